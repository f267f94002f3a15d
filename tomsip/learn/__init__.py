"""The learning loop: rewards from finished calls, a Thompson-sampling bandit over conversation
policies, and the guard that keeps a bad policy from reaching many callers.

The policy and learning settings of a dialplan are defined here (policies.py) and the dialplan imports
them; the loop sees a dialplan only through `LearningPlan`. The bandit, reward, guard and training are
pure (no I/O, no clock); `learner.py` is the one module that talks to the store.
"""
