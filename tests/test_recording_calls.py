"""Recording with consent, on real SIP calls (tests/dialplans_recorded), judged from the files.

A recording is two channels: the caller on 1, the assistant on 2. With the mock brain the channels
are checked by their tones and speech; with the offline booking assistant whisper transcribes each
channel. Never a byte without consent: a declined call leaves no file, and what was said before the
yes (the question itself) is not in the recording.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.caller import ConversingCaller, utterance
from tests.support.rtp import RtpPeer
from tests.support.server import ROOT, TomsipServer
from tests.support.sipp import run_sipp
from tests.support.stereo import read_stereo
from tests.support.tones import find_tones, near
from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.resample import resample_once
from tomsip.speech.local.whisper_stt import load_whisper

pytestmark = pytest.mark.sip

GREETING_HZ, CONSENT_HZ, REPLY_HZ = 440, 2800, 600


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory, recordings: Path) -> Iterator[TomsipServer]:
    env = {"TOMSIP_DIALPLANS": str(ROOT / "tests" / "dialplans_recorded"), "TOMSIP_RECORDINGS_DIR": str(recordings)}
    srv = TomsipServer(env=env, log_path=tmp_path_factory.mktemp("rec") / "server.log").start(timeout_s=90)
    yield srv
    srv.stop()


def wav_files(folder: Path) -> set[Path]:
    return set(folder.glob("*/*.wav"))


def call(server: TomsipServer, folder: Path, service: str, key: str, peer: RtpPeer) -> set[Path]:
    """One consent_digit call; the recordings it left."""
    before = wav_files(folder)
    result = run_sipp("consent_digit", server.sip_port, service, [peer.port], field1=key)
    assert result.ok, result.errors
    server.wait_metric("tomsip_active_calls", 0)
    return wav_files(folder) - before


def voiced_spans_ms(samples: np.ndarray, rate: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """(start, end) of stretches louder than -40 dBFS, in 20 ms windows."""
    win = rate // 50
    loud = [
        float(np.sqrt(np.mean(samples[i : i + win].astype(np.float64) ** 2))) > 32768 * 10 ** (-40 / 20)
        for i in range(0, len(samples) - win + 1, win)
    ]
    spans, start = [], None
    for n, on in enumerate([*loud, False]):
        if on and start is None:
            start = n
        elif not on and start is not None:
            spans.append((start * 20, n * 20))
            start = None
    return spans


def test_a_yes_by_key_records_the_caller_on_channel_one_and_the_assistant_on_two(
    recorder: TomsipServer, recordings: Path, rtp_peer: RtpPeer
) -> None:
    new = call(recorder, recordings, "record-ask", "1", rtp_peer)
    assert len(new) == 1, new
    rate, caller, assistant = read_stereo(new.pop())
    assert rate == SAMPLE_RATE
    ours = [t for t in find_tones(assistant, rate) if t.length_ms >= 100]
    assert near(ours[0].hz, GREETING_HZ), f"the recording starts after the yes, with the greeting: {ours}"
    assert not any(near(t.hz, CONSENT_HZ) for t in ours), "the question came before consent"
    assert any(near(t.hz, REPLY_HZ) for t in ours), ours
    # The caller's 3.2 s sentence is on channel 1, and our tones are not.
    speech = voiced_spans_ms(caller)
    assert sum(e - s for s, e in speech) >= 1500, speech
    greeting = ours[0]
    during = caller[greeting.start_ms * rate // 1000 : (greeting.start_ms + greeting.length_ms) * rate // 1000]
    level = 20 * np.log10(max(1e-9, float(np.sqrt(np.mean(during.astype(np.float64) ** 2)))) / 32768)
    assert level < -50, f"channel 1 is not silent while the greeting plays on channel 2: {level:.1f} dBFS"
    assert recorder.metric('tomsip_recordings_total{result="recorded"}') >= 1


def test_a_no_by_key_and_silence_when_asked_leave_no_file(
    recorder: TomsipServer, recordings: Path, rtp_peer: RtpPeer
) -> None:
    assert call(recorder, recordings, "record-ask", "2", rtp_peer) == set()
    assert call(recorder, recordings, "record-ask", "-", rtp_peer) == set()
    assert recorder.metric('tomsip_recordings_total{result="declined_dtmf"}') == 1
    assert recorder.metric('tomsip_recordings_total{result="declined_timeout"}') == 1
    # The call itself went on: the caller's sentence was answered.
    assert any(near(t.hz, REPLY_HZ) for t in find_tones(rtp_peer.decode()))


def test_announced_the_call_is_recorded_unless_declined(
    recorder: TomsipServer, recordings: Path, rtp_peer: RtpPeer
) -> None:
    assert len(call(recorder, recordings, "record-announce", "-", rtp_peer)) == 1
    assert call(recorder, recordings, "record-announce", "2", rtp_peer) == set()


def test_a_spoken_yes_records_the_booking_and_each_channel_says_its_own_words(
    recorder: TomsipServer, recordings: Path, rtp_peer: RtpPeer
) -> None:
    before = wav_files(recordings)
    caller = ConversingCaller(
        rtp_peer, [utterance("yes_please"), utterance("book_tuesday"), utterance("yes_please")]
    ).start()
    result = run_sipp("converse", recorder.sip_port, "booking-recorded", [rtp_peer.port], timeout_s=90)
    caller.stop()
    assert result.ok, result.errors
    recorder.wait_metric("tomsip_active_calls", 0)
    new = wav_files(recordings) - before
    assert len(new) == 1, new
    rate, caller_side, assistant_side = read_stereo(new.pop())
    whisper = load_whisper(2)

    def words(samples: np.ndarray) -> str:
        audio = np.frombuffer(resample_once(samples.tobytes(), rate, 16000), dtype="<i2").astype(np.float32)
        segments, _ = whisper.transcribe(audio / 32768, language="en", beam_size=1, condition_on_previous_text=False)
        text = " ".join(s.text for s in segments).lower()
        return "".join(c if c.isalnum() or c.isspace() else " " for c in text)

    theirs, ours = words(caller_side), words(assistant_side)
    assert "tuesday" in theirs, theirs
    assert "which day" in ours and "record" not in ours, ours  # the question came before the yes
    assert "which day" not in theirs, theirs


def test_a_folder_that_fails_during_the_calls_leaves_the_call_unrecorded_not_ended(
    recorder: TomsipServer, recordings: Path, rtp_peer: RtpPeer, tmp_path: Path
) -> None:
    failed = recorder.metric('tomsip_recordings_total{result="failed"}')
    # Today's folder becomes a file: the recording cannot be created.
    day = next(iter(wav_files(recordings))).parent
    moved = tmp_path / "moved"
    day.rename(moved)
    day.write_text("in the way")
    try:
        assert call(recorder, recordings, "record-ask", "1", rtp_peer) == set()
    finally:
        day.unlink()
        moved.rename(day)
    assert recorder.metric('tomsip_recordings_total{result="failed"}') == failed + 1
    assert any(near(t.hz, REPLY_HZ) for t in find_tones(rtp_peer.decode())), "the call went on"
    assert " ERROR " not in recorder.log_text() and "Traceback" not in recorder.log_text()


def test_an_unwritable_recordings_folder_stops_start_up_with_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"TOMSIP_DIALPLANS": str(ROOT / "tests" / "dialplans_recorded"), "TOMSIP_RECORDINGS_DIR": str(blocker / "x")}
    server = TomsipServer(env=env, log_path=tmp_path / "server.log")
    with pytest.raises(RuntimeError, match="exited with 2"):
        server.start()
    assert "recordings folder" in server.log_text() and "not writable" in server.log_text()
