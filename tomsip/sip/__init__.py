"""The SIP side: an engine seam, its baresip-python implementation, admission and trunk registration."""
