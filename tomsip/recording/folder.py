"""Where recordings go (TOMSIP_RECORDINGS_DIR), one file per call under a folder per day, and how long
they stay (TOMSIP_RECORDINGS_RETENTION_DAYS): the server purges older files at start and every hour,
and `tomsip recordings list | purge` does the same by hand.

A call id comes from the far end (a SIP Call-ID), so it never becomes a path as it is: anything but
letters, digits, `.`, `_` and `-` is replaced, and a short hash of the real id keeps names apart.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

DAY_S = 86_400


class RecordingFolderError(RuntimeError):
    """The recordings folder cannot be written: a start-up error where a dialplan records."""


@dataclass(frozen=True)
class RecordingFile:
    path: Path
    name: str  # relative to the folder: what the call record names
    bytes: int
    modified: float


def safe_name(call_id: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:80].lstrip(".") or "call"
    return f"{cleaned}-{hashlib.sha256(call_id.encode()).hexdigest()[:8]}"


class RecordingFolder:
    def __init__(self, root: Path, retention_days: int) -> None:
        self.root = root
        self.retention_days = retention_days

    def check_writable(self) -> None:
        """Create the folder and write a probe file in it, or say why not."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise RecordingFolderError(
                f"recordings folder {self.root} is not writable ({exc.strerror or type(exc).__name__}); "
                "set TOMSIP_RECORDINGS_DIR, or turn recording off in the dialplans"
            ) from None

    def path_for(self, call_id: str, now: float | None = None) -> Path:
        day = time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))
        return self.root / day / f"{safe_name(call_id)}.wav"

    def name_of(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def files(self) -> list[RecordingFile]:
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.glob("*/*.wav")):
            try:
                info = path.stat()
            except OSError:
                continue
            out.append(RecordingFile(path, self.name_of(path), info.st_size, info.st_mtime))
        return out

    def purge(self, older_than_days: int | None = None, now: float | None = None) -> list[RecordingFile]:
        """Delete recordings older than the retention (or `older_than_days`); 0 days keeps all."""
        days = self.retention_days if older_than_days is None else older_than_days
        if days <= 0:
            return []
        cutoff = (time.time() if now is None else now) - days * DAY_S
        gone = []
        for item in self.files():
            if item.modified < cutoff:
                try:
                    item.path.unlink()
                    gone.append(item)
                except OSError:
                    continue
        for day in self.root.glob("*/"):
            try:
                day.rmdir()  # only once empty
            except OSError:
                pass
        return gone
