"""The softphone page in a real headless Chromium: its fake microphone speaks a request (a WAV of
piper speech), the page connects over WebRTC (signalled on the authenticated WebSocket) to a tomsip
running the offline assistant, and the test reads from the page that reply audio arrived and the
transcript shows both sides; hanging up asks for a rating that reaches the learning loop. The
screenshot is saved as docs/softphone.png."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest

from tests.support.browser import SECRET, new_call_id, token
from tests.support.chromium import Chromium, chromium_path
from tests.support.server import TomsipServer
from tomsip.speech.local.pipeline import speak_offline

ROOT = Path(__file__).resolve().parents[1]
REQUEST = "I would like to book Tuesday at 10 in the morning."

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")


def speech_wav(path: Path) -> Path:
    """16 kHz mono: 4 s of quiet (the greeting plays), the request, then 30 s of quiet."""
    pcm = bytes(16000 * 2 * 4) + speak_offline(REQUEST) + bytes(16000 * 2 * 30)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    return path


async def wait_page(browser: Chromium, expression: str, timeout_s: float) -> object:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await browser.evaluate(f"window.softphone !== undefined && ({expression})")
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.25)


async def test_the_softphone_page_converses_over_webrtc_and_rates_the_call(tmp_path: Path) -> None:
    server = TomsipServer(
        env={"TOMSIP_JWT_SECRET": SECRET, "TOMSIP_RTC_HOST": "127.0.0.1", "TOMSIP_PIPELINE": "local"},
        log_path=tmp_path / "server.log",
    ).start(timeout_s=60)
    browser = await Chromium(tmp_path, speech_wav(tmp_path / "request.wav")).start()
    try:
        call_id = new_call_id()
        await browser.navigate(
            f"http://127.0.0.1:{server.http_port}/?call_id={call_id}&token={token(call_id)}&autostart=1"
        )
        replied = await wait_page(
            browser,
            "softphone.transcripts.some(t => t.role === 'assistant' && /shall i book/i.test(t.text))",
            60,
        )
        transcripts = await browser.evaluate("softphone.transcripts")
        assert replied, (transcripts, await browser.evaluate("softphone.lastError"), server.log_text()[-1500:])
        caller = " ".join(t["text"] for t in transcripts if t["role"] == "caller").lower()
        assert "tuesday" in caller, transcripts
        await asyncio.sleep(1.5)  # let the reply play, for the meters and the screenshot
        stats = await browser.evaluate("softphone.stats()")
        assert stats["packetsReceived"] > 100 and "opus" in stats["codec"].lower(), stats
        assert await browser.evaluate("softphone.remotePeak") > 0.01, "the reply was heard, not just received"
        await browser.screenshot(ROOT / "docs" / "softphone.png")

        await browser.evaluate("document.getElementById('hangup').click()")
        assert await browser.evaluate("!document.getElementById('rating').hidden")
        await browser.evaluate("document.querySelector('[data-rating=\"4\"]').click()")
        ended = await wait_page(browser, "softphone.ended", 15)
        assert ended and not await browser.evaluate("softphone.lastError")
        assert server.wait_metric('tomsip_ratings_total{source="browser"}', 1) == 1
        assert server.wait_metric('tomsip_episodes_total{outcome="logged"}', 1) == 1
    finally:
        await browser.stop()
        server.stop()
