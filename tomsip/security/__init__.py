"""Admission and authentication primitives shared by SIP and the browser bridge."""
