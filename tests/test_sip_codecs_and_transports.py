"""Every codec and transport: a call offered only that codec or carried by that transport is answered,
the greeting arrives in that codec, and the caller's speech sent in it gets its reply."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support.pcap import read_udp
from tests.support.rtp import RtpPeer
from tests.support.server import TomsipServer
from tests.support.sipp import SCENARIOS, run_sipp
from tests.support.tones import find_tones, near
from tomsip.audio.g711 import pcm_to_alaw, ulaw_to_pcm
from tomsip.audio.resample import resample_once

pytestmark = pytest.mark.sip


def speech_8k() -> bytes:
    pcap = SCENARIOS / "pcap" / "speech_short_pcmu.pcap"
    return b"".join(ulaw_to_pcm(p.payload[12:]) for p in read_udp(str(pcap)))


def speak_when_greeted(peer: RtpPeer, pt: int) -> threading.Thread:
    """Once the server's RTP arrives (its address is then known), wait out the greeting and speak."""

    def run() -> None:
        deadline = time.monotonic() + 10
        while peer.server_addr is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if peer.server_addr is None:
            return
        time.sleep(1.2)
        pcm8k = speech_8k()
        if pt == 8:
            payloads = [(pcm_to_alaw(pcm8k[i : i + 320]), 160) for i in range(0, len(pcm8k) - 319, 320)]
        else:
            from tests.support.codecs import encode_frames

            payloads = encode_frames(pt, resample_once(pcm8k, 8000, 16000))
        assert peer.server_addr is not None
        peer.send(pt, payloads, peer.server_addr)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(("codec", "pt"), [("pcma", 8), ("g722", 9), ("opus", 111)])
def test_codec_greeting_and_reply(server: TomsipServer, rtp_peer: RtpPeer, codec: str, pt: int) -> None:
    speaker = speak_when_greeted(rtp_peer, pt)
    result = run_sipp(f"codec_{codec}", server.sip_port, "1000", [rtp_peer.port])
    speaker.join(timeout=15)
    assert result.ok, result.errors
    assert pt in rtp_peer.payload_types(), rtp_peer.payload_types()
    tones = find_tones(rtp_peer.decode())
    assert near(tones[0].hz, 440) and abs(tones[0].length_ms - 800) <= 100, tones
    replies = [t for t in tones if near(t.hz, 600)]
    assert replies and abs(replies[0].length_ms - 2700) <= 500, tones


def test_tls_listener_answers_options(make_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    cert = tmp_path / "dev.pem"
    subprocess.run(["bash", str(Path(__file__).parents[1] / "certs" / "make-dev-cert.sh"), str(cert)], check=True)
    srv = make_server(tls_cert=cert)
    port = srv.sip_port + 1
    options = (
        f"OPTIONS sip:tomsip@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-1\r\n"
        "From: <sip:probe@127.0.0.1>;tag=probe\r\n"
        f"To: <sip:tomsip@127.0.0.1:{port}>\r\n"
        "Call-ID: tls-probe-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    # stdin stays open until the answer is read: s_client hangs up as soon as its input ends.
    proc = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(options.encode())
        proc.stdin.flush()
        answer = read_sip_response(proc.stdout, timeout_s=10)
    finally:
        proc.kill()
        proc.wait()
    assert answer.startswith("SIP/2.0 200"), answer
    assert "Call-ID: tls-probe-1" in answer


def read_sip_response(stream, timeout_s: float) -> str:  # type: ignore[no-untyped-def]
    """Read one SIP response's header block from a pipe, giving up after `timeout_s`."""
    import os
    import select

    data = b""
    deadline = time.monotonic() + timeout_s
    fd = stream.fileno()
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


def test_a_real_softphone_calls_over_tls_and_hears_greeting_and_reply(make_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Debian's baresip (1.0) as the caller: TLS signalling, a WAV of speech as its microphone, and its
    sndfile module recording what it hears."""
    import subprocess
    import wave

    import numpy as np

    root = Path(__file__).parents[1]
    for name in ("server", "client"):
        subprocess.run(["bash", str(root / "certs" / "make-dev-cert.sh"), str(tmp_path / f"{name}.pem")], check=True)
    speech = tmp_path / "speech.wav"
    with wave.open(str(speech), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(8000 * 2 * 2) + speech_8k() + bytes(8000 * 2 * 8))
    recordings = tmp_path / "heard"
    recordings.mkdir()
    conf = tmp_path / "baresip"
    conf.mkdir()
    (conf / "accounts").write_text("<sip:softphone@127.0.0.1;transport=tls>;regint=0;audio_codecs=PCMU\n")
    (conf / "config").write_text(
        "poll_method epoll\nsip_listen 127.0.0.1:0\nsip_verify_server no\n"
        f"sip_certificate {tmp_path / 'client.pem'}\n"
        f"audio_source aufile,{speech}\naudio_player aufile,{tmp_path / 'unused.wav'}\naudio_srate 8000\n"
        f"snd_path {recordings}\nmodule_path /usr/lib/baresip/modules\n"
        "module stdio.so\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\nmodule account.so\nmodule menu.so\n"
    )
    srv = make_server(tls_cert=tmp_path / "server.pem")
    subprocess.run(
        # -n pins the softphone to loopback; left alone it advertises the machine's own interface.
        [
            "baresip",
            "-n",
            "127.0.0.1",
            "-f",
            str(conf),
            "-e",
            f"/dial sip:1000@127.0.0.1:{srv.sip_port + 1}",
            "-t",
            "12",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=40,
        check=False,
    )
    heard = sorted(recordings.glob("*-dec.wav"))
    assert heard, "the softphone recorded nothing: the TLS call was not established"
    with wave.open(str(heard[0])) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
        rate = w.getframerate()
    tones = find_tones(samples, rate)
    assert near(tones[0].hz, 440) and abs(tones[0].length_ms - 800) <= 100, tones
    assert any(near(t.hz, 600) and abs(t.length_ms - 2700) <= 500 for t in tones), tones
    assert "transport=tls" in srv.log_text()
