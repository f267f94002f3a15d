"""Every shell command the README shows works as written, with the mock pipeline, on loopback.

The fenced `sh` blocks are read from README.md and run with `sh` as they stand; `tomsip` is the
project's own (.venv/bin first on PATH), the environment adds only TOMSIP_PIPELINE=mock (the README
says so for answering in tones) and a log level, and the shipped dialplans are used. Two parts are
not run here: `bash scripts/test` is the command that runs this suite, and the first line's
`python3.11 -m venv .venv && .venv/bin/pip install -e .` needs the package registry, which a test in
a private network namespace cannot reach; a fresh clone's CI run does both, and its `tomsip serve`
is run here. Inline `tomsip ...` commands are run too, and a guard fails when the README shows one
this file does not run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent
SERVE = re.compile(r"(?:\.venv/bin/)?tomsip serve")
NOT_HERE = ("bash scripts/test", "-m venv .venv")


def sh_blocks() -> list[list[str]]:
    """The README's ```sh blocks, as lists of command lines without their comments."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README, flags=re.S | re.M)
    out = []
    for block in blocks:
        lines = [re.sub(r"\s+#\s.*$", "", line).rstrip() for line in block.splitlines()]
        out.append([line for line in lines if line])
    return out


def block(first: str) -> list[str]:
    """The sh block whose first command starts with `first`."""
    return next(lines for lines in sh_blocks() if lines[0].startswith(first))


def env() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOMSIP_")},
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "TOMSIP_PIPELINE": "mock",
        "TOMSIP_LOG_LEVEL": "warning",
    }


def wait_ready(timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise AssertionError("the README's server did not become ready on 127.0.0.1:8080")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@pytest.fixture
def readme_server() -> Iterator[None]:
    """The first block's `tomsip serve`, as the README runs it: default host and ports (127.0.0.1,
    SIP 5060, HTTP 8080), shipped dialplans, and the mock pipeline."""
    first = sh_blocks()[0][0]
    serve = next(part.strip() for part in first.split("&&") if SERVE.search(part))
    proc = subprocess.Popen(["sh", "-c", f"exec {serve}"], cwd=ROOT, env=env())
    try:
        wait_ready()
        yield
    finally:
        assert stop(proc) == 0, "SIGTERM drains and exits 0"


def test_the_readme_shows_the_commands_this_file_runs() -> None:
    blocks = sh_blocks()
    assert len(blocks) == 5, "a new sh block in the README needs a test here"
    assert "bash scripts/test" in blocks[0][1] and SERVE.search(blocks[0][0])
    assert blocks[1][0] == "cd sipp_scenarios" and blocks[1][-1].startswith("sipp ")
    browser = block("export TOMSIP_JWT_SECRET")
    assert "tomsip serve &" in browser and browser[-1].startswith("tomsip token")
    inline = set(re.findall(r"`(tomsip [a-z]+)", README))
    speech = block("tomsip speech-worker &")
    assert speech[-1].endswith("tomsip serve &")
    assert block("(cd sipp_scenarios && sipp")[-1].startswith("TOMSIP_ADMIN_TOKEN=change-me tomsip dial")
    known = {"tomsip serve", "tomsip token", "tomsip calibrate", "tomsip learn", "tomsip speech", "tomsip dial"}
    known.add("tomsip recordings")
    assert inline <= known, inline


def test_placing_a_test_call_as_the_readme_shows(readme_server: None) -> None:
    script = "\n".join(["set -e", *sh_blocks()[1]])
    done = subprocess.run(["sh", "-c", script], cwd=ROOT, env=env(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout.decode()[-2000:] + done.stderr.decode()[-2000:]


async def test_the_browser_block_serves_and_mints_a_token_the_server_takes(tmp_path: Path) -> None:
    lines = block("export TOMSIP_JWT_SECRET")
    script = "\n".join([*lines, 'echo "server=$!"'])
    # A file, not a pipe: the server the block leaves running in the background keeps its stdout.
    with open(tmp_path / "out", "wb") as stdout:
        done = subprocess.run(["sh", "-c", script], cwd=ROOT, env=env(), stdout=stdout, timeout=60)
    out = (tmp_path / "out").read_text()
    pid = int(re.search(r"server=(\d+)", out).group(1))  # type: ignore[union-attr]
    try:
        assert done.returncode == 0
        token = out.split("server=")[0].strip().splitlines()[-1]
        wait_ready()
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:8080/ws/stream/demo-1?token={token}"
            async with http.ws_connect(url) as ws:
                await ws.send_json({"type": "start"})
                ready = await ws.receive_json(timeout=10)
                assert ready["type"] == "ready" and ready["call_id"] == "demo-1"
                await ws.send_json({"type": "stop"})
    finally:
        os.kill(pid, signal.SIGTERM)
        for _ in range(150):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_speech_worker_block_serves_a_node_that_loads_no_model(tmp_path: Path) -> None:
    """The worker starts, speaks and transcribes for curl, and the node it serves comes up with the
    offline default (TOMSIP_PIPELINE unset) yet without a model runtime in its memory."""
    script = []
    for line in block("tomsip speech-worker &"):
        script.append(line)
        if line.endswith("&"):
            script.append('echo "pid=$!"')
    node_env = {k: v for k, v in env().items() if k != "TOMSIP_PIPELINE"}
    with open(tmp_path / "out", "wb") as stdout:
        done = subprocess.run(["sh", "-c", "\n".join(script)], cwd=ROOT, env=node_env, stdout=stdout, timeout=120)
    out = (tmp_path / "out").read_text()
    pids = [int(p) for p in re.findall(r"pid=(\d+)", out)]
    try:
        assert done.returncode == 0 and len(pids) == 2, out
        assert "tuesday" in out.lower(), f"curl's transcription of the worker's own speech: {out!r}"
        wait_ready(90)
        with urllib.request.urlopen("http://127.0.0.1:8080/healthz/speech_api", timeout=5) as resp:
            probe = json.loads(resp.read())
        assert probe["stt_workers"] == {"http://127.0.0.1:8090": "up"}, probe
        maps = Path(f"/proc/{pids[1]}/maps").read_text()
        assert "ctranslate2" not in maps and "onnxruntime" not in maps, "the node loads no model"
    finally:
        for pid in reversed(pids):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 40
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_gone(pid) for pid in pids)


def test_the_outbound_block_places_a_call_that_a_person_answers(tmp_path: Path) -> None:
    """The block's SIPp answers as a person; `tomsip dial --wait` exits 0 only for an answered call."""
    script = []
    for line in block("(cd sipp_scenarios && sipp"):
        script.append(line)
        if line.endswith("&"):
            script.append('echo "pid=$!"')
    with open(tmp_path / "out", "wb") as stdout:
        done = subprocess.run(["sh", "-c", "\n".join(script)], cwd=ROOT, env=env(), stdout=stdout, timeout=120)
    out = (tmp_path / "out").read_text()
    pids = [int(p) for p in re.findall(r"pid=(\d+)", out)]
    try:
        assert done.returncode == 0 and len(pids) == 1, out
        result = json.loads(out.strip().splitlines()[-1])
        assert result["result"] == "answered" and result["answered_by"] == "human", result
    finally:
        os.kill(pids[0], signal.SIGTERM)
        deadline = time.monotonic() + 40
        while not _gone(pids[0]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(pids[0])


@pytest.mark.parametrize(
    "command",
    [
        "tomsip serve --help",
        "tomsip calibrate",
        "TOMSIP_EPISODE_LOG=/dev/null tomsip learn status",  # it reads the server's log or its Redis
        "TOMSIP_JWT_SECRET=x tomsip token --call-id demo-1 --sub me",
        "tomsip speech-worker --help",
        "tomsip dial --help",
        "TOMSIP_RECORDINGS_DIR=/nonexistent tomsip recordings list",
        "TOMSIP_RECORDINGS_DIR=/nonexistent tomsip recordings purge --older-than-days 7",
    ],
)
def test_inline_commands_run(command: str) -> None:
    done = subprocess.run(["sh", "-c", command], cwd=ROOT, env=env(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.strip()
