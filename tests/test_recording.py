"""tomsip/recording: the two-channel recorder and the recordings folder, without a call."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.stereo import read_stereo
from tomsip.audio.frames import FRAME_BYTES, SAMPLE_RATE, SILENCE_FRAME
from tomsip.recording.folder import RecordingFolder, RecordingFolderError, safe_name
from tomsip.recording.recorder import CallRecording


def frame(value: int) -> bytes:
    return np.full(FRAME_BYTES // 2, value, dtype="<i2").tobytes()


def test_the_caller_is_channel_one_and_the_assistant_channel_two_in_step(tmp_path: Path) -> None:
    recording = CallRecording(tmp_path / "day" / "call.wav", "call-1")
    recording.open()
    recording.tick([frame(100)], [])  # the caller speaks, we are silent
    recording.tick([frame(200)], [frame(-1), frame(-2), frame(-3)])  # a reply starts, three frames of lead
    recording.tick([frame(300)], [])
    recording.tick([SILENCE_FRAME], [])
    recording.close()
    rate, caller, assistant = read_stereo(tmp_path / "day" / "call.wav")
    per = FRAME_BYTES // 2
    assert rate == SAMPLE_RATE and len(caller) == 4 * per
    assert [int(caller[i * per]) for i in range(4)] == [100, 200, 300, 0]
    assert [int(assistant[i * per]) for i in range(4)] == [0, -1, -2, -3]
    assert recording.seconds == pytest.approx(0.08)


def test_nothing_is_written_before_open_and_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recording = CallRecording(path, "call-1")
    recording.tick([frame(1)], [frame(2)])
    recording.close()
    assert not path.exists()
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        CallRecording(path, "call-1").open()
    assert path.read_bytes() == b"keep"


def test_call_ids_from_the_far_end_become_safe_distinct_names(tmp_path: Path) -> None:
    folder = RecordingFolder(tmp_path, 30)
    hostile = ["../../etc/passwd", "a/b", ".hidden", "x y@host", "x_y@host"]
    names = [folder.path_for(call_id, now=0).name for call_id in hostile]
    assert len(set(names)) == len(names)
    for call_id in hostile:
        path = folder.path_for(call_id, now=0)
        assert path.parent.parent == tmp_path and path.parent.name == "1970-01-01", path
        assert not path.name.startswith(".") and "/" not in safe_name(call_id)


def test_retention_purges_old_recordings_only(tmp_path: Path) -> None:
    folder = RecordingFolder(tmp_path, 30)
    old, new = folder.path_for("old", now=0), folder.path_for("new")
    for path in (old, new):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")
    os.utime(old, (time.time() - 31 * 86_400, time.time() - 31 * 86_400))
    assert [f.name for f in folder.purge()] == [folder.name_of(old)]
    assert not old.exists() and not old.parent.exists() and new.exists()
    assert RecordingFolder(tmp_path, 0).purge() == [], "0 days keeps everything"
    assert [f.name for f in folder.files()] == [folder.name_of(new)]


def test_a_folder_that_cannot_be_written_is_said_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RecordingFolderError, match="not writable"):
        RecordingFolder(blocker / "recordings", 30).check_writable()
    RecordingFolder(tmp_path / "fresh", 30).check_writable()
    assert (tmp_path / "fresh").is_dir() and list((tmp_path / "fresh").iterdir()) == []
