"""Speech stages behind small protocols: deterministic mocks, offline local engines, hosted adapters."""
