"""Messages callers leave when a warm transfer found nobody: one JSON line each in
TOMSIP_MESSAGES_FILE, with what is needed to call back (the caller's address, as the far end gave it)
and what they said (as the brain transcribed it). This is operator data, like a voicemail box; it is
never logged (the log line says only that a message was left)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

log = logging.getLogger("tomsip.messages")


class MessageBox:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def leave(self, call_id: str, dialplan: str, caller: str, text: str) -> None:
        entry = {"at": time.time(), "call_id": call_id, "dialplan": dialplan, "caller": caller, "message": text}
        try:
            await asyncio.to_thread(self._append, json.dumps(entry))
        except OSError as exc:  # the call goes on; the message is lost, and said so
            log.warning("message not written: %s", type(exc).__name__, extra={"call_id": call_id})

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
