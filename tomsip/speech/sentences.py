"""Cutting streamed text into sentences, so that TTS can speak the first while the rest is written.

A responder (a rule, a hosted LLM) produces text token by token; TTS engines like piper speak whole
sentences well and fragments badly. `SentenceCutter` holds text until a sentence is complete and
hands it out then. Abbreviations and decimals ("Dr.", "10.30") are not sentence ends.
"""

from __future__ import annotations

import re

_END = re.compile(r"[.!?;:]+[\"')\]]*(?=\s)|\n+")
_NOT_AN_END = re.compile(r"\b(?:mr|mrs|ms|dr|st|vs|etc|e\.g|i\.e)\.$", re.IGNORECASE)


class SentenceCutter:
    def __init__(self, min_chars: int = 2) -> None:
        self._buffer = ""
        self._min_chars = min_chars

    def push(self, text: str) -> list[str]:
        """Add streamed text; returns the sentences it completed."""
        self._buffer += text
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            end = match.end()
            candidate = self._buffer[start:end]
            if _NOT_AN_END.search(candidate.rstrip()) and not match.group().startswith("\n"):
                continue
            sentence = candidate.strip()
            if len(sentence) >= self._min_chars:
                out.append(sentence)
                start = end
        self._buffer = self._buffer[start:]
        return out

    def flush(self) -> list[str]:
        """The unfinished rest at the end of the stream."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []


def split_sentences(text: str) -> list[str]:
    cutter = SentenceCutter()
    return cutter.push(text + " ") + cutter.flush()
