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
    BRIEFING = "briefing"  # to the human agent of a warm transfer: who is waiting and what they want
    TRANSFER_FAILED = "transfer_failed"  # back from a warm transfer nobody took: offer to take a message
    MESSAGE_TAKEN = "message_taken"  # the caller left their message: thank them
    CONSENT = "consent"  # the recording notice, or the question whether the call may be recorded
    VOICEMAIL = "voicemail"  # a machine answered our outbound call: the dialplan's message, then goodbye
    RESUMED = "resumed"  # the caller is back from holding the call: welcome them back, pick up the thread
