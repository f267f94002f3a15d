"""tomsip: a realtime phone-assistant server (SIP and browsers into one conversation core)."""

__version__ = "0.1.0"
