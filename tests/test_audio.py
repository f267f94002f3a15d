"""Pure audio pieces: G.711 tables, framer, playout queue, end-pointer, resampler."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tomsip.audio import g711
from tomsip.audio.framer import Framer
from tomsip.audio.frames import FRAME_BYTES, SAMPLE_RATE, rms_dbfs
from tomsip.audio.player import PlayoutQueue
from tomsip.audio.resample import StreamResampler, resample_once
from tomsip.audio.vad import EndPointer, SpeechEnd, SpeechStart, VoiceDetector, VoiceDuration, VoiceGap

ALL_PCM = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


def test_g711_is_bit_exact_with_audioop() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    assert g711.pcm_to_ulaw(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)
    assert g711.pcm_to_alaw(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)
    assert g711.ulaw_to_pcm(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_to_pcm(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_framer_cuts_odd_chunks_into_frames_and_keeps_the_rest() -> None:
    framer = Framer()
    assert framer.push(b"\x01" * 500) == []
    frames = framer.push(b"\x02" * 900)
    assert [len(f) for f in frames] == [FRAME_BYTES, FRAME_BYTES]
    assert framer.buffered == 1400 - 2 * FRAME_BYTES


def test_framer_drops_oldest_audio_when_the_consumer_stalls() -> None:
    framer = Framer(max_buffered=FRAME_BYTES * 2)
    framer.push(b"\x01" * (FRAME_BYTES - 1))
    frames = framer.push(b"\x02" * (FRAME_BYTES * 3))
    assert len(frames) <= 2
    assert frames[-1] == b"\x02" * FRAME_BYTES


def test_playout_queue_counts_and_flushes() -> None:
    queue = PlayoutQueue()
    queue.enqueue(b"\x00" * (FRAME_BYTES * 5 + 10))
    assert queue.queued_ms == 100
    assert len(queue.take(2)) == 2
    assert queue.flush() == 3 * 20 + 20  # three frames and the partial one
    assert queue.empty


def test_playout_queue_takes_back_unsent_frames_in_order() -> None:
    queue = PlayoutQueue()
    queue.enqueue(b"".join(bytes([i]) * FRAME_BYTES for i in range(4)))
    sent = queue.take(3)
    queue.push_back(sent[1:])
    assert [f[0] for f in queue.take(5)] == [1, 2, 3]
    assert queue.frames_out == 4


def test_playout_queue_pads_the_tail_of_a_reply() -> None:
    queue = PlayoutQueue()
    queue.enqueue(b"\x01" * 10)
    queue.end_of_stream()
    (frame,) = queue.take(5)
    assert len(frame) == FRAME_BYTES and frame.startswith(b"\x01" * 10)


def feed(endpointer: EndPointer, pattern: list[bool]) -> list[object]:
    events: list[object] = []
    for voiced in pattern:
        events += endpointer.push(voiced)
    return events


def test_endpointer_needs_the_onset_minimum_and_ends_after_the_silence_threshold() -> None:
    endpointer = EndPointer(silence_ms=100, onset_ms=60)
    assert feed(endpointer, [True, True, False]) == []  # a click is not speech
    events = feed(endpointer, [True] * 10 + [False] * 5)
    assert events[0] == SpeechStart(3)
    assert VoiceDuration(200) in events
    assert VoiceGap(40, 200) in events
    assert events[-1] == SpeechEnd(200, 13)
    assert not endpointer.in_speech


def test_endpointer_short_pauses_do_not_end_the_utterance() -> None:
    endpointer = EndPointer(silence_ms=200, onset_ms=20)
    events = feed(endpointer, [True] * 5 + [False] * 5 + [True] * 5 + [False] * 10)
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    assert ends == [SpeechEnd(300, 15)]


def test_endpointer_caps_very_long_utterances() -> None:
    endpointer = EndPointer(silence_ms=500, onset_ms=20, max_utterance_ms=1000)
    events = feed(endpointer, [True] * 60)
    assert any(isinstance(e, SpeechEnd) for e in events)


def test_vad_tells_a_tone_burst_of_speech_band_noise_from_silence() -> None:
    vad = VoiceDetector(2)
    assert not vad.is_speech(bytes(FRAME_BYTES))
    rng = np.random.default_rng(1)
    t = np.arange(320) / SAMPLE_RATE
    voice = 6000 * (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t)) + rng.normal(0, 300, 320)
    results = [vad.is_speech(voice.astype("<i2").tobytes()) for _ in range(10)]
    assert any(results)
    with pytest.raises(ValueError):
        vad.is_speech(b"\x00" * 10)


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (16000, 1), (48000, 2)])
def test_stream_resampler_keeps_time(rate: int, channels: int) -> None:
    resampler = StreamResampler(rate, channels)
    chunk = bytes(rate // 50 * 2 * channels)
    out = b"".join(resampler.convert(chunk) for _ in range(50))
    assert abs(len(out) - SAMPLE_RATE * 2) <= 2 * 8


def test_stream_resampler_carries_a_split_sample() -> None:
    resampler = StreamResampler(16000)
    assert resampler.convert(b"\x01") == b""
    assert resampler.convert(b"\x00\x02\x00") == b"\x01\x00\x02\x00"


def test_resample_once_and_levels() -> None:
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype("<i2").tobytes()
    up = resample_once(tone, 8000, 16000)
    assert len(up) == 2 * len(tone)
    assert -15.8 < rms_dbfs(up) < -14.7  # a sine of amplitude 8000 is -15.26 dBFS
    assert rms_dbfs(b"") == -120.0
