"""What a turn of the assistant answers. The FSM decides the kind; the brains speak according to it."""

from __future__ import annotations

import enum


class TurnKind(enum.Enum):
    GREETING = "greeting"
    UTTERANCE = "utterance"
    DIGIT = "digit"
    NO_INPUT = "no_input"
    GOODBYE = "goodbye"
    RATING = "rating"  # ask the caller to rate the call, on the scale in tomsip/conversation/rating.py
    CONSENT = "consent"  # the recording notice, or the question whether the call may be recorded
    VOICEMAIL = "voicemail"  # a machine answered our outbound call: the dialplan's message, then goodbye
    RESUMED = "resumed"  # the caller is back from holding the call: welcome them back, pick up the thread
