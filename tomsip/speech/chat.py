"""A Responder over any OpenAI-compatible chat-completions endpoint, streamed (server-sent events).

Tokens arrive one by one and are cut into sentences (tomsip/speech/sentences.py), so TTS speaks the
first sentence while the model is still writing. Each call keeps its own history, bounded to the last
`max_history` messages after the system prompt. A barge-in cancels the iteration, which closes the
HTTP response (the model stops generating for us) and records the reply as interrupted.

The model steers the call with two markers it is told about in the system prompt: `[hangup]` ends
the call after the reply, `[transfer]` hands the caller to the dialplan's `transfer_uri`. Markers are
never spoken.

Failures (HTTP errors, timeouts, an unreachable host, malformed events) raise SpeechStageError: the
caller hears an apology and the call goes on (tomsip/speech/staged_brain.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp

from tomsip.conversation.turns import TurnKind
from tomsip.speech.sentences import SentenceCutter
from tomsip.speech.stages import (
    MESSAGE_TAKEN,
    TRANSFER_FAILED,
    ReplyText,
    SpeechStageError,
    Transcript,
    TurnRequest,
    briefing,
    call_context,
    consent_prompt,
    rating_prompt,
    voicemail_message,
)

BACKEND = "chat"
HANGUP, TRANSFER = "[hangup]", "[transfer]"
DEFAULT_PROMPT = (
    "You are a friendly phone assistant. Your words are spoken aloud on a phone call: answer in one to "
    "three short sentences, plain words, no lists, no markdown, no emoji. When the conversation is "
    f"finished, end your reply with {HANGUP}. If the caller asks for a human, say you will put them "
    f"through and end your reply with {TRANSFER}."
)
# What the assistant says word for word, whatever the model (synthesized once, from the phrase cache).
GOODBYE = "Thank you for calling. Goodbye!"
STILL_THERE = "Are you still there?"
NOT_HEARD = "Sorry, I didn't hear that. Could you say it again?"
WELCOME_BACK = "Welcome back. Where were we?"


@dataclass(frozen=True)
class ChatConfig:
    base_url: str
    model: str
    api_key: str | None
    timeout_s: float
    max_history: int


class ChatClient:
    """One HTTP session per process (connection reuse), opened on first use inside the event loop."""

    def __init__(self, config: ChatConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=self.config.timeout_s)
            self._session = aiohttp.ClientSession(headers=headers, timeout=timeout)
        return self._session

    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    async def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        """The reply's text deltas as they come."""
        body = {"model": self.config.model, "messages": messages, "stream": True}
        try:
            async with asyncio.timeout(self.config.timeout_s * 3):
                async with self._http().post(self._url("/chat/completions"), json=body) as resp:
                    if resp.status != 200:
                        raise SpeechStageError(BACKEND, f"http_{resp.status}")
                    async for raw in resp.content:
                        delta = _parse_sse_line(raw)
                        if delta is _DONE:
                            return
                        if isinstance(delta, str) and delta:
                            yield delta
        except TimeoutError:
            raise SpeechStageError(BACKEND, "timeout") from None
        except aiohttp.ClientError as exc:
            raise SpeechStageError(BACKEND, "unreachable", type(exc).__name__) from None

    async def probe(self) -> dict[str, object]:
        try:
            async with asyncio.timeout(5), self._http().get(self._url("/models")) as resp:
                return {"ok": resp.status == 200, "backend": BACKEND, "status": resp.status}
        except (TimeoutError, aiohttp.ClientError) as exc:
            return {"ok": False, "backend": BACKEND, "error": type(exc).__name__}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


_DONE = object()
_MARKERS = re.compile(f"{re.escape(HANGUP)}|{re.escape(TRANSFER)}", re.IGNORECASE)


def _parse_sse_line(raw: bytes) -> str | object | None:
    """One line of the event stream: a text delta, _DONE, or None (comments, keep-alives, no text)."""
    line = raw.decode("utf-8", errors="replace").strip()
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return _DONE
    try:
        event = json.loads(data)
        choices = event.get("choices") or []
        if not choices:
            return None
        return (choices[0].get("delta") or {}).get("content") or None
    except (json.JSONDecodeError, AttributeError, TypeError) as exc:
        raise SpeechStageError(BACKEND, "malformed", type(exc).__name__) from None


class ChatConversation:
    def __init__(self, client: ChatClient, options: Mapping[str, object]) -> None:
        self._client = client
        self._transfer_uri = str(options.get("transfer_uri") or "")
        self.greeting = str(options.get("greeting") or "Hello, how can I help?")
        self.rating_prompt = rating_prompt(options)
        self.voicemail = voicemail_message(options)
        self.consent = consent_prompt(options)
        self._options = options
        self._fixed = {
            TurnKind.GOODBYE: GOODBYE,
            TurnKind.RATING: self.rating_prompt,
            TurnKind.VOICEMAIL: self.voicemail,
            TurnKind.CONSENT: self.consent,
            TurnKind.TRANSFER_FAILED: TRANSFER_FAILED,
            TurnKind.MESSAGE_TAKEN: MESSAGE_TAKEN,
            TurnKind.NO_INPUT: STILL_THERE,
            TurnKind.RESUMED: WELCOME_BACK,
        }
        prompt = str(options.get("system_prompt") or DEFAULT_PROMPT)
        context = call_context(options)
        if context:  # an outbound call's purpose: whom we call, about what
            prompt += "\nAbout this call: " + "; ".join(f"{k}: {v}" for k, v in context.items())
        self.history: list[dict[str, str]] = [{"role": "system", "content": prompt}]

    async def respond(self, request: TurnRequest, transcript: Transcript | None) -> AsyncIterator[ReplyText]:
        kind = request.kind
        if kind is TurnKind.GREETING:
            self._remember("assistant", self.greeting)
            yield ReplyText(self.greeting)
            return
        if kind is TurnKind.BRIEFING:
            said = [m["content"] for m in self.history if m["role"] == "user"][-2:]
            summary = "A caller is waiting." + (f" They said: {' '.join(said)}" if said else "")
            yield ReplyText(briefing(summary, self._options))
            return
        fixed = self._fixed.get(kind)
        if fixed is not None:  # words that do not depend on what the caller said
            yield ReplyText(fixed)
            return
        if kind is TurnKind.DIGIT:
            user = f"(The caller pressed the key {request.digit}.)"
        else:
            user = transcript.text.strip() if transcript else ""
            if not user:
                yield ReplyText(NOT_HEARD)
                return
        self._remember("user", user)
        async for reply in self._stream_reply():
            yield reply

    async def _stream_reply(self) -> AsyncIterator[ReplyText]:
        cutter = SentenceCutter()
        said: list[str] = []
        hangup = transfer = False
        finished = False
        try:
            async for delta in self._client.stream(self.history):
                for sentence in cutter.push(delta):
                    text, h, t = _strip_markers(sentence)
                    hangup, transfer = hangup or h, transfer or t
                    if text:
                        said.append(text)
                        yield ReplyText(text)
            rest, h, t = _strip_markers(" ".join(cutter.flush()))
            hangup, transfer = hangup or h, transfer or t
            if rest:
                said.append(rest)
            transfer_to = self._transfer_uri if transfer else ""
            if rest or hangup or transfer_to:
                yield ReplyText(rest, end_call=hangup and not transfer_to, transfer_to=transfer_to)
            finished = True
        finally:
            if said:
                self._remember("assistant", " ".join(said) + ("" if finished else " (interrupted)"))

    def _remember(self, role: str, content: str) -> None:
        self.history.append({"role": role, "content": content})
        keep = self._client.config.max_history
        if len(self.history) - 1 > keep:
            del self.history[1 : len(self.history) - keep]


def _strip_markers(text: str) -> tuple[str, bool, bool]:
    lowered = text.lower()
    spoken = _MARKERS.sub("", text)
    return " ".join(spoken.split()), HANGUP in lowered, TRANSFER in lowered


class ChatResponder:
    def __init__(self, client: ChatClient) -> None:
        self.client = client

    def open(self, call_id: str, options: Mapping[str, object]) -> ChatConversation:
        return ChatConversation(self.client, options)

    def fixed_phrases(self, options: Mapping[str, object]) -> list[str]:
        conversation = ChatConversation(self.client, options)
        return [conversation.greeting, conversation.rating_prompt, GOODBYE, STILL_THERE, NOT_HEARD, WELCOME_BACK]
