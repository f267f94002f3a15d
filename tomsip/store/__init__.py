"""Shared state behind one Protocol (base.py): call records, one-time nonces, the bandit's posteriors
and the learning episodes. The in-process store (memory.py) is the embedded default; the Redis store
(redis_store.py) is what several nodes share."""
