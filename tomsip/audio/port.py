"""The AudioPort seam: what every transport gives a CallSession.

A SIP call, a browser WebSocket and a WebRTC peer all look like this. Audio comes in as fixed 20 ms
internal-format frames pushed to a listener (silence frames while the far end sends nothing, so that
end-pointing timers keep running); audio goes out through `play`, paced by the transport's own media
clock, with an instant `flush` and an honest count of what really reached the far end.

Every transport implements it through tomsip/audio/paced_port.py, which owns the pacing, silence
insertion and failure handling they share. Frames are pushed rather than pulled: one media clock
per transport services every port in one pass, which costs far less per call than one sleeping task
per call (see bench/capacity).
"""

from __future__ import annotations

from typing import Protocol

from tomsip.conversation.events import ConversationEvent


class PortListener(Protocol):
    """The session side of a port. Called on the event loop; must not block."""

    def on_frame(self, frame: bytes) -> None: ...

    def on_dtmf(self, digit: str) -> None: ...

    def on_hangup(self, reason: str) -> None: ...

    def on_hold(self, held: bool) -> None:
        """The far end put the call on hold (True) or took it off (False)."""
        ...


class MediaTap(Protocol):
    """Sees a call's audio both ways, tick by tick (a consented recording)."""

    def tick(self, heard: list[bytes], sent: list[bytes]) -> None:
        """The frames heard from the far end this tick, and the frames sent to it."""
        ...


class AudioPort(Protocol):
    """One conversation's media, whatever carried it in."""

    @property
    def call_id(self) -> str: ...

    @property
    def codec(self) -> str:
        """The negotiated codec (for the call record and logs)."""
        ...

    def attach(self, listener: PortListener) -> None:
        """Start delivering frames, digits and the hang-up to `listener`."""
        ...

    def play(self, pcm: bytes) -> None:
        """Queue internal-format PCM16 for paced playout."""
        ...

    def end_of_reply(self) -> None:
        """No more audio for this reply: play out a trailing partial frame."""
        ...

    def flush(self) -> int:
        """Stop playout now and drop what is queued; returns the ms dropped. Clears a pause."""
        ...

    def pause(self) -> None:
        """Stop sending now but keep everything queued (a tentative barge-in)."""
        ...

    def resume(self) -> None:
        """Continue a paused playout from the first unsent frame."""
        ...

    @property
    def played_ms(self) -> int:
        """Milliseconds of queued audio that really went out since the port opened."""
        ...

    @property
    def playing(self) -> bool:
        """True while queued audio remains to be sent."""
        ...

    def notify(self, event: ConversationEvent) -> None:
        """A state change, transcript line or cleared playout, for a transport with a display (a
        browser); a transport without one ignores it."""
        ...

    def set_tap(self, tap: MediaTap | None) -> None:
        """Start (or with None, stop) handing each tick's audio both ways to `tap`."""
        ...

    async def hangup(self) -> None:
        """End the conversation from our side. Never raises: a far end that is gone is gone."""
        ...

    async def attended_transfer(self, other: AudioPort) -> bool:
        """Hand this port's far end to `other`'s far end (SIP: REFER with Replaces, both calls ours).
        True once it was taken (both our legs then end); False where the far end cannot take it (it
        did not offer Replaces, another transport), and the caller bridges the two instead."""
        ...

    async def transfer(self, target: str) -> bool:
        """Hand the far end to `target` (SIP: a blind REFER). True once it was taken (our leg then
        ends); False if refused or impossible on this transport. Never raises."""
        ...
