"""Who answered an outbound call, as FSM events: the answering-machine detector, then for a machine
the cue to leave the message. Pure, like the turn taker beside it: (voiced, frame) in, events out.

The session feeds it every frame from the answer on, until it is done; it keeps the verdict (and when
it came) for the call's result.
"""

from __future__ import annotations

from tomsip.audio.answer_detector import Answer, AnswerDetector, DetectorConfig, Verdict, VoicemailCue, tone_hz
from tomsip.call import fsm

TONE_GONE_FRAMES = 2  # after a beep verdict: the beep is over once this many frames hold no tone


class AnswerWatch:
    def __init__(self, config: DetectorConfig | None = None, leave_message: bool = True) -> None:
        self._detector = AnswerDetector(config)
        self._cue: VoicemailCue | None = None
        self._in_beep = False
        self._tone_gone = 0
        self._leave_message = leave_message
        self.verdict: Verdict | None = None
        self.done = False

    def push(self, voiced: bool, frame: bytes) -> list[fsm.Event]:
        """The next 20 ms of what the far end sends; the events it decides, in order."""
        if self.done:
            return []
        if self._in_beep:  # the verdict came during the beep: speak as soon as it stops
            self._tone_gone = 0 if tone_hz(frame) is not None else self._tone_gone + 1
            return self._ready() if self._tone_gone >= TONE_GONE_FRAMES else []
        if self._cue is not None:
            return self._ready() if self._cue.push(voiced, frame) else []
        verdict = self._detector.push(voiced, frame)
        if verdict is None:
            return []
        self.verdict = verdict
        if verdict.answer is not Answer.MACHINE:
            self.done = True
            return [fsm.AnswerDetected(verdict.answer.value)]
        if not self._leave_message:
            return [fsm.AnswerDetected("machine"), *self._ready()]
        if verdict.reason == "beep":
            self._in_beep = True
        else:
            self._cue = VoicemailCue()
        return [fsm.AnswerDetected("machine")]

    def _ready(self) -> list[fsm.Event]:
        self.done = True
        return [fsm.VoicemailReady()]
