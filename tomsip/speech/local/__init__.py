"""Offline speech engines whose models come from installed packages (nothing is downloaded)."""
