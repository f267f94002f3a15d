"""Calls tomsip places: the request (POST /api/calls, `tomsip dial`), pacing, results and callbacks."""
