"""`tomsip recordings list | purge`: the consented call recordings in TOMSIP_RECORDINGS_DIR.

- list: every recording (its name as the call record gives it, size, age), oldest first;
- purge: delete those older than TOMSIP_RECORDINGS_RETENTION_DAYS (or --older-than-days), as the
  server does every hour.
"""

from __future__ import annotations

import argparse
import time

from tomsip.recording.folder import RecordingFolder
from tomsip.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "recordings", help="list or purge consented call recordings", description=__doc__
    )
    parser.add_argument("action", choices=["list", "purge"])
    parser.add_argument("--config", help="TOML settings file (env TOMSIP_CONFIG_FILE)")
    parser.add_argument("--recordings-dir", dest="recordings_dir", help="env TOMSIP_RECORDINGS_DIR")
    parser.add_argument("--older-than-days", type=int, help="purge: instead of TOMSIP_RECORDINGS_RETENTION_DAYS")
    return parser


def run(args: argparse.Namespace, settings: Settings) -> int:
    folder = RecordingFolder(settings.recordings_dir, settings.recordings_retention_days)
    now = time.time()
    if args.action == "list":
        files = folder.files()
        for item in sorted(files, key=lambda f: f.modified):
            age_days = (now - item.modified) / 86_400
            print(f"{item.name}\t{item.bytes / 1e6:.2f} MB\t{age_days:.1f} days old")
        print(f"{len(files)} recordings in {folder.root}")
        return 0
    days = folder.retention_days if args.older_than_days is None else args.older_than_days
    gone = folder.purge(days, now)
    for item in gone:
        print(f"deleted {item.name}")
    print(f"{len(gone)} recordings older than {days} days deleted" if days > 0 else "retention 0: nothing deleted")
    return 0
