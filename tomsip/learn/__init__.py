"""The learning loop: rewards from finished calls, a Thompson-sampling bandit over conversation
policies, and the guard that keeps a bad policy from reaching many callers. Pure: no I/O, no clock."""
