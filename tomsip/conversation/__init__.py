"""The vocabulary every layer of a conversation shares: kinds of turn, the rating scale, and the
events a transport with a display is told about.

Leaf modules: they import nothing of tomsip, so the call driver, the speech brains and the transports
can all speak these words without importing one another.
"""
