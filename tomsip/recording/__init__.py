"""Call recordings, only with the caller's consent: the two-channel file, where it goes, retention."""
