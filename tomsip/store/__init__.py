"""Shared state: call records now; nonces, bandit parameters and episodes in later issues."""
