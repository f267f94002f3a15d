"""The call FSM, driven by feeding events: no sockets, no clock."""

from __future__ import annotations

from tomsip.call import fsm
from tomsip.call.fsm import (
    CallEnded,
    CallFsm,
    CancelTimer,
    CancelTurn,
    CountBargeIn,
    FlushPlayout,
    FsmConfig,
    Hangup,
    PausePlayout,
    ResumePlayout,
    StartTimer,
    StartTurn,
    State,
    TurnKind,
)


def started(config: FsmConfig | None = None) -> CallFsm:
    machine = CallFsm(config or FsmConfig())
    actions = machine.handle(fsm.CallStarted())
    assert StartTimer(fsm.MAX_DURATION_TIMER, machine.config.max_call_ms) in actions
    assert StartTurn(1, TurnKind.GREETING) in actions
    return machine


def listening() -> CallFsm:
    machine = started()
    machine.handle(fsm.ReplyStarted(1))
    machine.handle(fsm.ReplyFinished(1))
    actions = machine.handle(fsm.PlayoutDone(1))
    assert machine.state is State.LISTENING
    assert StartTimer(fsm.NO_INPUT_TIMER, machine.config.no_input_ms) in actions
    return machine


def speaking() -> CallFsm:
    machine = listening()
    machine.handle(fsm.SpeechStarted())
    actions = machine.handle(fsm.UtteranceEnded(1500))
    assert StartTurn(2, TurnKind.UTTERANCE, 1500) in actions
    assert machine.state is State.THINKING
    machine.handle(fsm.ReplyStarted(2))
    assert machine.state is State.SPEAKING
    return machine


def test_greeting_then_listening() -> None:
    machine = listening()
    assert machine.turn == 1


def test_reply_finished_waits_for_playout_before_listening() -> None:
    machine = speaking()
    assert machine.handle(fsm.ReplyFinished(2)) == []
    assert machine.state is State.SPEAKING
    machine.handle(fsm.PlayoutDone(2))
    assert machine.state is State.LISTENING


def test_barge_in_pauses_at_onset_then_flushes_and_cancels_once_speech_is_long_enough() -> None:
    machine = speaking()
    assert machine.handle(fsm.SpeechStarted()) == [PausePlayout()]
    assert machine.handle(fsm.SpeechContinues(100)) == []  # not yet a barge-in
    actions = machine.handle(fsm.SpeechContinues(200))
    assert actions[:3] == [FlushPlayout(), CancelTurn(2), CountBargeIn()]
    assert machine.state is State.LISTENING
    assert machine.barge_ins == 1
    # The rest of the caller's utterance becomes the next turn.
    assert StartTurn(3, TurnKind.UTTERANCE, 900) in machine.handle(fsm.UtteranceEnded(900))


def test_a_cough_pauses_playout_then_resumes_it_without_a_barge_in() -> None:
    machine = speaking()
    assert machine.handle(fsm.SpeechStarted()) == [PausePlayout()]
    assert machine.handle(fsm.SpeechGap(80, 60)) == []
    assert machine.handle(fsm.SpeechGap(160, 60)) == [ResumePlayout()]
    assert machine.state is State.SPEAKING and machine.barge_ins == 0
    assert machine.handle(fsm.UtteranceEnded(60)) == []  # not a turn either
    assert machine.turn == 2


def test_playout_that_ends_while_paused_is_resumed_before_listening() -> None:
    machine = speaking()
    machine.handle(fsm.SpeechStarted())
    machine.handle(fsm.ReplyFinished(2))
    actions = machine.handle(fsm.PlayoutDone(2))
    assert actions[0] == ResumePlayout() and machine.state is State.LISTENING


def test_the_goodbye_is_not_paused() -> None:
    machine = listening()
    machine.handle(fsm.TimerFired(fsm.MAX_DURATION_TIMER))
    machine.handle(fsm.ReplyStarted(2))
    assert machine.handle(fsm.SpeechStarted()) == []


def test_barge_in_during_greeting() -> None:
    machine = started()
    machine.handle(fsm.ReplyStarted(1))
    actions = machine.handle(fsm.SpeechContinues(200))
    assert FlushPlayout() in actions and CancelTurn(1) in actions
    assert machine.state is State.LISTENING


def test_speech_while_thinking_cancels_the_pending_reply_without_counting_a_barge_in() -> None:
    machine = listening()
    machine.handle(fsm.UtteranceEnded(800))
    actions = machine.handle(fsm.SpeechContinues(300))
    assert CancelTurn(2) in actions
    assert FlushPlayout() not in actions
    assert machine.barge_ins == 0


def test_barge_in_disabled_lets_the_reply_play() -> None:
    machine = CallFsm(FsmConfig(barge_in_enabled=False))
    machine.handle(fsm.CallStarted())
    machine.handle(fsm.ReplyStarted(1))
    assert machine.handle(fsm.SpeechStarted()) == []
    assert machine.handle(fsm.SpeechContinues(3000)) == []
    assert machine.state is State.GREETING


def test_short_utterance_while_speaking_is_not_a_turn() -> None:
    machine = speaking()
    machine.handle(fsm.SpeechStarted())
    assert machine.handle(fsm.UtteranceEnded(80)) == [ResumePlayout()]
    assert machine.turn == 2


def test_stale_events_of_a_cancelled_turn_are_ignored() -> None:
    machine = speaking()
    machine.handle(fsm.SpeechContinues(500))
    machine.handle(fsm.UtteranceEnded(700))  # turn 3 starts
    assert machine.handle(fsm.ReplyFinished(2)) == []
    assert machine.handle(fsm.PlayoutDone(2)) == []
    assert machine.state is State.THINKING


def test_digit_interrupts_and_is_answered() -> None:
    machine = speaking()
    actions = machine.handle(fsm.DigitPressed("5"))
    assert actions[:2] == [FlushPlayout(), CancelTurn(2)]
    assert StartTurn(3, TurnKind.DIGIT, digit="5") in actions


def test_reply_that_ends_the_call_says_goodbye_then_hangs_up() -> None:
    machine = listening()
    machine.handle(fsm.DigitPressed("#"))
    machine.handle(fsm.ReplyStarted(2))
    machine.handle(fsm.ReplyFinished(2, end_call=True))
    actions = machine.handle(fsm.PlayoutDone(2))
    assert machine.state is State.CLOSING
    assert StartTurn(3, TurnKind.GOODBYE) in actions
    machine.handle(fsm.ReplyStarted(3))
    assert machine.handle(fsm.SpeechContinues(2000)) == []  # the goodbye is not interruptible
    machine.handle(fsm.ReplyFinished(3))
    actions = machine.handle(fsm.PlayoutDone(3))
    assert Hangup("completed") in actions and actions[-1] == CallEnded("completed")
    assert machine.state is State.ENDED


def test_max_duration_closes_even_mid_reply() -> None:
    machine = speaking()
    actions = machine.handle(fsm.TimerFired(fsm.MAX_DURATION_TIMER))
    assert FlushPlayout() in actions and CancelTurn(2) in actions
    assert StartTurn(3, TurnKind.GOODBYE) in actions
    assert machine.state is State.CLOSING


def test_closing_guard_hangs_up_when_the_goodbye_never_finishes() -> None:
    machine = listening()
    machine.handle(fsm.TimerFired(fsm.MAX_DURATION_TIMER))
    actions = machine.handle(fsm.TimerFired(fsm.CLOSING_TIMER))
    assert Hangup("max_duration") in actions
    assert machine.state is State.ENDED


def test_no_input_reprompts_then_closes() -> None:
    machine = CallFsm(FsmConfig(max_no_input_prompts=1))
    machine.handle(fsm.CallStarted())
    machine.handle(fsm.ReplyFinished(1))
    machine.handle(fsm.PlayoutDone(1))
    assert StartTurn(2, TurnKind.NO_INPUT) in machine.handle(fsm.TimerFired(fsm.NO_INPUT_TIMER))
    machine.handle(fsm.ReplyFinished(2))
    machine.handle(fsm.PlayoutDone(2))
    actions = machine.handle(fsm.TimerFired(fsm.NO_INPUT_TIMER))
    assert StartTurn(3, TurnKind.GOODBYE) in actions
    assert machine.end_reason == "no_input"


def test_remote_hangup_cancels_work_and_sends_no_bye() -> None:
    machine = speaking()
    actions = machine.handle(fsm.RemoteHangup("remote_hangup"))
    assert CancelTurn(2) in actions
    assert not any(isinstance(a, Hangup) for a in actions)
    assert actions[-1] == CallEnded("remote_hangup")
    assert machine.handle(fsm.SpeechContinues(500)) == []


def test_local_hangup_sends_bye_from_any_state() -> None:
    for machine in (started(), listening(), speaking()):
        actions = machine.handle(fsm.LocalHangupRequested("drain"))
        assert Hangup("drain") in actions and actions[-1] == CallEnded("drain")


def test_failed_reply_ends_the_call_with_bye() -> None:
    machine = speaking()
    actions = machine.handle(fsm.ReplyFailed(2))
    assert Hangup("error") in actions
    assert machine.state is State.ENDED


def test_call_started_twice_is_harmless() -> None:
    machine = started()
    assert machine.handle(fsm.CallStarted()) == []


def _reply_asking_transfer(machine: CallFsm) -> list[fsm.Action]:
    machine.handle(fsm.UtteranceEnded(1500))
    turn = machine.turn
    machine.handle(fsm.ReplyStarted(turn))
    machine.handle(fsm.ReplyFinished(turn, transfer_to="sip:desk@127.0.0.1"))
    return machine.handle(fsm.PlayoutDone(turn))


def test_a_transfer_is_asked_for_after_the_reply_has_played_and_the_far_end_ending_it_is_success() -> None:
    machine = listening()
    actions = _reply_asking_transfer(machine)
    assert fsm.TransferCall("sip:desk@127.0.0.1") in actions
    assert machine.state is State.CLOSING
    assert StartTimer(fsm.CLOSING_TIMER, machine.config.transfer_guard_ms) in actions
    assert machine.handle(fsm.DigitPressed("1")) == [], "no new turns while handing over"
    assert machine.handle(fsm.RemoteHangup())[-1] == CallEnded("transferred")


def test_a_refused_transfer_says_goodbye_and_a_silent_one_times_out_with_bye() -> None:
    machine = listening()
    _reply_asking_transfer(machine)
    actions = machine.handle(fsm.TransferFailed())
    assert any(isinstance(a, StartTurn) and a.kind is TurnKind.GOODBYE for a in actions)
    assert machine.end_reason == "transfer_failed"
    silent = listening()
    _reply_asking_transfer(silent)
    actions = silent.handle(fsm.TimerFired(fsm.CLOSING_TIMER))
    assert Hangup("transfer_timeout") in actions and actions[-1] == CallEnded("transfer_timeout")


# ---- end-of-call rating ----


def rating_asked(config: FsmConfig | None = None) -> CallFsm:
    """A call whose assistant has just said its last reply (end_call) and asked for a rating."""
    machine = started(config or FsmConfig(ask_rating=True, rating_timeout_ms=5000))
    machine.handle(fsm.ReplyStarted(1))
    machine.handle(fsm.ReplyFinished(1))
    machine.handle(fsm.PlayoutDone(1))
    machine.handle(fsm.DigitPressed("#"))
    machine.handle(fsm.ReplyStarted(2))
    machine.handle(fsm.ReplyFinished(2, end_call=True))
    actions = machine.handle(fsm.PlayoutDone(2))
    assert machine.state is State.RATING
    assert StartTurn(3, TurnKind.RATING) in actions
    machine.handle(fsm.ReplyFinished(3))
    actions = machine.handle(fsm.PlayoutDone(3))
    assert actions == [StartTimer(fsm.RATING_TIMER, 5000)], "the caller's time starts when the question ends"
    return machine


def test_a_completed_call_asks_for_a_rating_and_a_digit_answers_it() -> None:
    machine = rating_asked()
    assert machine.handle(fsm.DigitPressed("7")) == [fsm.RatingRejected("dtmf")]
    assert machine.state is State.RATING, "a wrong key is counted and the question stays open"
    actions = machine.handle(fsm.DigitPressed("4"))
    assert actions[0] == fsm.RecordRating(4, "dtmf")
    assert StartTurn(4, TurnKind.GOODBYE) in actions and machine.state is State.CLOSING
    assert (machine.rating, machine.rating_source) == (4, "dtmf")
    machine.handle(fsm.ReplyFinished(4))
    assert machine.handle(fsm.PlayoutDone(4))[-1] == CallEnded("completed")


def test_a_digit_during_the_rating_question_cuts_it_short() -> None:
    machine = started(FsmConfig(ask_rating=True))
    machine.handle(fsm.ReplyStarted(1))
    machine.handle(fsm.ReplyFinished(1, end_call=True))
    machine.handle(fsm.PlayoutDone(1))
    assert machine.state is State.RATING
    actions = machine.handle(fsm.DigitPressed("5"))
    assert actions[:3] == [fsm.RecordRating(5, "dtmf"), FlushPlayout(), CancelTurn(2)]


def test_a_spoken_rating_is_transcribed_and_nonsense_is_rejected() -> None:
    machine = rating_asked()
    assert machine.handle(fsm.SpeechStarted()) == [], "no barge-in while a rating is asked"
    assert machine.handle(fsm.UtteranceEnded(600)) == [fsm.HearRating()]
    assert machine.handle(fsm.UtteranceEnded(600)) == [], "one utterance is heard at a time"
    assert machine.handle(fsm.RatingHeard(None)) == [fsm.RatingRejected("speech")]
    assert machine.handle(fsm.UtteranceEnded(500)) == [fsm.HearRating()]
    actions = machine.handle(fsm.RatingHeard(2))
    assert actions[0] == fsm.RecordRating(2, "speech") and machine.state is State.CLOSING


def test_no_answer_to_the_rating_question_says_goodbye_unrated() -> None:
    machine = rating_asked()
    actions = machine.handle(fsm.TimerFired(fsm.RATING_TIMER))
    assert StartTurn(4, TurnKind.GOODBYE) in actions and machine.rating is None
    assert machine.end_reason == "completed"


def test_a_caller_who_rated_during_the_call_is_not_asked_again() -> None:
    machine = listening()
    assert machine.handle(fsm.RatingGiven(5, "browser")) == [fsm.RecordRating(5, "browser")]
    assert machine.state is State.LISTENING, "the call goes on"
    assert machine.handle(fsm.RatingGiven(9, "browser")) == [fsm.RatingRejected("browser")]
    machine.handle(fsm.DigitPressed("#"))
    machine.handle(fsm.ReplyFinished(2, end_call=True))
    actions = machine.handle(fsm.PlayoutDone(2))
    assert StartTurn(3, TurnKind.GOODBYE) in actions


def test_without_ask_rating_a_completed_call_just_says_goodbye() -> None:
    machine = started()
    machine.handle(fsm.ReplyFinished(1, end_call=True))
    assert StartTurn(2, TurnKind.GOODBYE) in machine.handle(fsm.PlayoutDone(1))


def test_hanging_up_while_the_assistant_speaks_is_remembered_for_the_reward() -> None:
    machine = started()
    machine.handle(fsm.ReplyStarted(1))
    machine.handle(fsm.RemoteHangup())
    assert machine.hung_up_while_speaking
    quiet = listening()
    quiet.handle(fsm.RemoteHangup())
    assert not quiet.hung_up_while_speaking


def test_hanging_up_during_the_rating_question_cancels_it() -> None:
    machine = rating_asked()
    actions = machine.handle(fsm.RemoteHangup())
    assert FlushPlayout() in actions and CancelTimer(fsm.RATING_TIMER) in actions
    assert actions[-1] == CallEnded("remote") and not machine.hung_up_while_speaking


def test_a_hold_while_speaking_stops_the_reply_and_resuming_welcomes_the_caller_back() -> None:
    machine = speaking()
    actions = machine.handle(fsm.CallerHeld())
    assert actions[:2] == [FlushPlayout(), CancelTurn(2)] and CancelTimer(fsm.NO_INPUT_TIMER) in actions
    assert machine.held and machine.state is State.LISTENING
    # Music on hold is not the caller speaking, late news of the cancelled turn changes nothing,
    # and silence does not count against a held caller.
    for event in (fsm.SpeechStarted(), fsm.SpeechContinues(900), fsm.UtteranceEnded(1200), fsm.DigitPressed("5")):
        assert machine.handle(event) == []
    assert machine.handle(fsm.ReplyFinished(2)) == [] and machine.handle(fsm.PlayoutDone(2)) == []
    assert machine.handle(fsm.TimerFired(fsm.NO_INPUT_TIMER)) == []
    assert machine.handle(fsm.CallerResumed()) == [StartTurn(3, TurnKind.RESUMED)]
    assert not machine.held and machine.state is State.THINKING
    assert machine.handle(fsm.CallerResumed()) == [], "a second resume is nothing new"


def test_a_greeting_or_rating_question_cut_by_a_hold_is_asked_again() -> None:
    machine = started()
    machine.handle(fsm.ReplyStarted(1))
    assert FlushPlayout() in machine.handle(fsm.CallerHeld())
    assert machine.handle(fsm.CallerResumed()) == [StartTurn(2, TurnKind.GREETING)]
    assert machine.state is State.GREETING

    rating = CallFsm(FsmConfig(ask_rating=True))
    rating.handle(fsm.CallStarted())
    rating.handle(fsm.ReplyFinished(1))
    rating.handle(fsm.PlayoutDone(1))
    rating.handle(fsm.UtteranceEnded(800))
    rating.handle(fsm.ReplyFinished(2, end_call=True))
    rating.handle(fsm.PlayoutDone(2))
    assert rating.state is State.RATING
    rating.handle(fsm.CallerHeld())
    assert rating.handle(fsm.CallerResumed()) == [StartTurn(4, TurnKind.RATING)]


def test_a_held_call_still_ends_at_its_maximum_length_without_a_word() -> None:
    machine = listening()
    machine.handle(fsm.CallerHeld())
    actions = machine.handle(fsm.TimerFired(fsm.MAX_DURATION_TIMER))
    assert Hangup("max_duration") in actions and not any(isinstance(a, StartTurn) for a in actions)
    assert machine.state is State.ENDED


def test_a_hold_during_the_goodbye_ends_the_call() -> None:
    machine = listening()
    machine.handle(fsm.TimerFired(fsm.NO_INPUT_TIMER))
    machine.handle(fsm.ReplyFinished(2))
    machine.handle(fsm.PlayoutDone(2))
    machine.handle(fsm.TimerFired(fsm.NO_INPUT_TIMER))
    machine.handle(fsm.ReplyFinished(3))
    machine.handle(fsm.PlayoutDone(3))
    machine.handle(fsm.TimerFired(fsm.NO_INPUT_TIMER))
    assert machine.state is State.CLOSING
    actions = machine.handle(fsm.CallerHeld())
    assert Hangup("no_input") in actions and machine.state is State.ENDED


# ---- outbound calls: who answered decides what is said first ----


def detecting(leave_voicemail: bool = True) -> CallFsm:
    machine = CallFsm(FsmConfig(detect_answer=True, leave_voicemail=leave_voicemail))
    actions = machine.handle(fsm.CallStarted())
    assert machine.state is State.DETECTING
    assert not any(isinstance(a, StartTurn) for a in actions), "nothing is said before we know who answered"
    return machine


def test_an_outbound_call_greets_a_person_or_an_unknown_answer_once_detected() -> None:
    for answer in ("human", "unknown"):
        machine = detecting()
        assert machine.handle(fsm.SpeechStarted()) == [] and machine.handle(fsm.UtteranceEnded(600)) == []
        assert machine.handle(fsm.DigitPressed("5")) == []
        assert machine.handle(fsm.AnswerDetected(answer)) == [StartTurn(1, TurnKind.GREETING)]
        assert machine.state is State.GREETING


def test_a_machine_gets_the_voicemail_message_when_ready_and_the_call_ends_after_it() -> None:
    machine = detecting()
    assert machine.handle(fsm.AnswerDetected("machine")) == []
    assert machine.state is State.DETECTING  # still listening for the end of its greeting
    actions = machine.handle(fsm.VoicemailReady())
    assert StartTurn(1, TurnKind.VOICEMAIL) in actions and machine.state is State.CLOSING
    assert machine.handle(fsm.SpeechStarted()) == [], "the machine's noise does not interrupt the message"
    machine.handle(fsm.ReplyStarted(1))
    machine.handle(fsm.ReplyFinished(1))
    actions = machine.handle(fsm.PlayoutDone(1))
    assert Hangup("voicemail") in actions and CallEnded("voicemail") in actions


def test_with_no_voicemail_message_a_machine_is_hung_up_on_without_a_word() -> None:
    machine = detecting(leave_voicemail=False)
    machine.handle(fsm.AnswerDetected("machine"))
    actions = machine.handle(fsm.VoicemailReady())
    assert not any(isinstance(a, StartTurn) for a in actions)
    assert Hangup("voicemail") in actions and machine.state is State.ENDED


def test_a_late_detection_changes_nothing_once_the_call_went_on() -> None:
    machine = detecting()
    machine.handle(fsm.AnswerDetected("human"))
    assert machine.handle(fsm.AnswerDetected("machine")) == []
    assert machine.handle(fsm.VoicemailReady()) == []
    assert machine.state is State.GREETING


# ---- recording consent: never a byte without it ----


def consent(mode: str) -> CallFsm:
    machine = CallFsm(FsmConfig(recording=mode, consent_wait_ms=2000))
    actions = machine.handle(fsm.CallStarted())
    assert StartTurn(1, TurnKind.CONSENT) in actions and machine.state is State.CONSENT
    return machine


def asked(mode: str) -> CallFsm:
    machine = consent(mode)
    machine.handle(fsm.ReplyStarted(1))
    machine.handle(fsm.ReplyFinished(1))
    assert StartTimer(fsm.CONSENT_TIMER, 2000) in machine.handle(fsm.PlayoutDone(1))
    return machine


def test_asked_a_yes_by_key_or_voice_starts_the_recording_then_the_greeting() -> None:
    machine = asked("ask")
    actions = machine.handle(fsm.DigitPressed("1"))
    assert fsm.StartRecording() in actions and StartTurn(2, TurnKind.GREETING) in actions
    assert actions.index(fsm.StartRecording()) < actions.index(StartTurn(2, TurnKind.GREETING))
    machine = asked("ask")
    assert machine.handle(fsm.UtteranceEnded(700)) == [fsm.HearConsent()]
    assert machine.handle(fsm.UtteranceEnded(300)) == [], "one answer is heard at a time"
    assert fsm.StartRecording() in machine.handle(fsm.ConsentHeard(True))


def test_asked_a_no_an_unclear_answer_or_silence_records_nothing() -> None:
    for event, how in (
        (fsm.DigitPressed("2"), "dtmf"),
        (fsm.ConsentHeard(False), "speech"),
        (fsm.ConsentHeard(None), "speech"),
        (fsm.TimerFired(fsm.CONSENT_TIMER), "timeout"),
    ):
        machine = asked("ask")
        if isinstance(event, fsm.ConsentHeard):
            machine.handle(fsm.UtteranceEnded(500))
        actions = machine.handle(event)
        assert fsm.RecordingDeclined(how) in actions and fsm.StartRecording() not in actions, event
        assert StartTurn(2, TurnKind.GREETING) in actions and machine.state is State.GREETING
        assert machine.handle(fsm.DigitPressed("1")) != [] and fsm.StartRecording() not in machine.handle(
            fsm.DigitPressed("1")
        ), "a late yes is a digit for the conversation, not consent"


def test_announced_only_an_objection_stops_the_recording() -> None:
    machine = asked("announce")
    assert fsm.StartRecording() in machine.handle(fsm.TimerFired(fsm.CONSENT_TIMER))
    machine = asked("announce")
    machine.handle(fsm.UtteranceEnded(400))
    assert fsm.StartRecording() in machine.handle(fsm.ConsentHeard(None))
    machine = consent("announce")  # declined by key while the notice still plays: it stops at once
    actions = machine.handle(fsm.DigitPressed("2"))
    assert actions[:2] == [FlushPlayout(), CancelTurn(1)] and fsm.RecordingDeclined("dtmf") in actions


def test_the_consent_question_is_asked_again_after_a_hold_and_not_recorded_meanwhile() -> None:
    machine = consent("ask")
    machine.handle(fsm.CallerHeld())
    assert machine.handle(fsm.DigitPressed("1")) == []
    assert machine.handle(fsm.CallerResumed()) == [StartTurn(2, TurnKind.CONSENT)]
    assert machine.state is State.CONSENT


def test_an_outbound_call_asks_for_consent_only_once_a_person_answered() -> None:
    machine = CallFsm(FsmConfig(detect_answer=True, recording="ask"))
    machine.handle(fsm.CallStarted())
    assert machine.handle(fsm.AnswerDetected("human")) == [StartTurn(1, TurnKind.CONSENT)]


# ---- warm transfer ----


def transferring(take_message: bool = True) -> CallFsm:
    machine = CallFsm(FsmConfig(warm_transfer=True, take_message=take_message, warm_transfer_guard_ms=90_000))
    machine.handle(fsm.CallStarted())
    machine.handle(fsm.ReplyStarted(1))
    machine.handle(fsm.ReplyFinished(1))
    machine.handle(fsm.PlayoutDone(1))
    machine.handle(fsm.UtteranceEnded(900))
    machine.handle(fsm.ReplyStarted(2))
    machine.handle(fsm.ReplyFinished(2, transfer_to="sip:desk@pbx"))
    actions = machine.handle(fsm.PlayoutDone(2))
    assert fsm.TransferCall("sip:desk@pbx", warm=True) in actions
    assert StartTimer(fsm.CLOSING_TIMER, 90_000) in actions and machine.state is State.CLOSING
    return machine


def test_a_warm_transfer_holds_the_caller_and_once_connected_lasts_until_a_hang_up() -> None:
    machine = transferring()
    assert machine.handle(fsm.UtteranceEnded(800)) == [] and machine.handle(fsm.DigitPressed("3")) == []
    assert machine.handle(fsm.TransferConnected()) == [CancelTimer(fsm.CLOSING_TIMER)]
    assert CallEnded("transferred") in machine.handle(fsm.RemoteHangup("bye"))


def test_a_caller_who_hangs_up_on_hold_was_not_transferred() -> None:
    machine = transferring()
    assert CallEnded("bye") in machine.handle(fsm.RemoteHangup("bye"))


def test_nobody_took_the_transfer_so_the_assistant_takes_a_message_and_says_goodbye() -> None:
    machine = transferring()
    assert machine.handle(fsm.TransferFailed()) == [
        CancelTimer(fsm.CLOSING_TIMER),
        StartTurn(3, TurnKind.TRANSFER_FAILED),
    ]
    machine.handle(fsm.ReplyStarted(3))
    machine.handle(fsm.ReplyFinished(3))
    machine.handle(fsm.PlayoutDone(3))
    assert machine.state is State.LISTENING
    actions = machine.handle(fsm.UtteranceEnded(2500))
    assert actions[-2:] == [fsm.TakeMessage(), StartTurn(4, TurnKind.MESSAGE_TAKEN)]
    machine.handle(fsm.ReplyStarted(4))
    machine.handle(fsm.ReplyFinished(4))
    assert StartTurn(5, TurnKind.GOODBYE) in machine.handle(fsm.PlayoutDone(4))
    assert machine.end_reason == "message_taken"


def test_without_messages_a_failed_warm_transfer_says_goodbye() -> None:
    machine = transferring(take_message=False)
    assert StartTurn(3, TurnKind.GOODBYE) in machine.handle(fsm.TransferFailed())
