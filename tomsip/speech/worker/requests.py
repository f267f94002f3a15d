"""The audio API's requests, checked field by field. Pure: fields in, a request or a BadRequest out.

The shapes are OpenAI's (`/v1/audio/transcriptions` multipart, `/v1/audio/speech` JSON), so any client
of that API works. Two extensions, both optional: raw PCM16 uploads (a `.pcm`/`.raw` file name or an
`audio/pcm`/`audio/L16` type) with their rate in a `sample_rate` field or the type's `rate=`, and a
`sample_rate` for `pcm` speech (OpenAI's is 24 kHz; a SIP node asks for its own 16 kHz and saves a
conversion). Every refusal names the field, as OpenAI's `param` does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.resample import resample_once
from tomsip.audio.wav import WavError, is_wav, read_wav

MIN_RATE, MAX_RATE = 8000, 48000
SPEECH_RATES = (8000, 16000, 22050, 24000, 48000)
OPENAI_PCM_RATE = 24000
RAW_TYPES = ("audio/pcm", "audio/l16", "audio/x-raw", "audio/raw")
RAW_SUFFIXES = (".pcm", ".raw", ".l16", ".s16le")
# One voice is installed (en_US-joe-medium); OpenAI's names are taken so that its clients work as is.
VOICES = frozenset(
    {"joe", "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
)
TranscriptFormat = Literal["json", "text", "verbose_json"]
SpeechFormat = Literal["pcm", "wav"]
TRANSCRIPT_FORMATS = ("json", "text", "verbose_json")
SPEECH_FORMATS = ("pcm", "wav")


def _shown(value: object) -> str:
    """A client's value as an answer quotes it: repr, cut short (a field can be megabytes)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class BadRequest(ValueError):
    """A request this API cannot serve: 400 with the field (`param`) and the reason."""

    def __init__(self, param: str, reason: str, code: str = "invalid_value") -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str = ""
    content_type: str = ""


@dataclass(frozen=True)
class TranscriptionRequest:
    pcm: bytes  # mono PCM16 at the internal rate
    prompt: str
    response_format: TranscriptFormat
    duration_s: float


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    voice: str
    response_format: SpeechFormat
    speed: float
    sample_rate: int


def transcription_request(upload: Upload | None, fields: Mapping[str, str], max_audio_s: float) -> TranscriptionRequest:
    if upload is None:
        raise BadRequest("file", "a multipart field `file` with the audio is required", "missing_field")
    language = fields.get("language", "").strip().lower()
    if language not in ("", "en", "english"):
        raise BadRequest("language", f"only English is installed (whisper tiny.en), not {_shown(language)}")
    response_format = fields.get("response_format", "json").strip() or "json"
    if response_format not in TRANSCRIPT_FORMATS:
        raise BadRequest("response_format", f"{_shown(response_format)} is not one of {', '.join(TRANSCRIPT_FORMATS)}")
    pcm, rate = _audio(upload, fields)
    if not pcm:
        raise BadRequest("file", "the audio has no samples", "invalid_audio")
    duration_s = len(pcm) / 2 / rate
    if duration_s > max_audio_s:
        raise BadRequest("file", f"audio is {duration_s:.1f} s long; at most {max_audio_s:g} s", "audio_too_long")
    if rate != SAMPLE_RATE:
        pcm = resample_once(pcm, rate, SAMPLE_RATE)
    prompt = fields.get("prompt", "")
    return TranscriptionRequest(pcm, prompt, cast(TranscriptFormat, response_format), duration_s)


def _audio(upload: Upload, fields: Mapping[str, str]) -> tuple[bytes, int]:
    """Mono PCM16 and its rate from a WAV, or from raw PCM16 declared as such."""
    if is_wav(upload.data):
        try:
            wav = read_wav(upload.data)
        except WavError as exc:
            raise BadRequest("file", str(exc), "invalid_audio") from None
        return wav.pcm, _checked_rate(wav.rate, "file")
    content_type = upload.content_type.lower()
    raw = content_type.split(";")[0].strip() in RAW_TYPES or upload.filename.lower().endswith(RAW_SUFFIXES)
    if not raw:
        raise BadRequest(
            "file",
            "not audio this worker reads: send a PCM16 WAV, or raw PCM16 named *.pcm or typed audio/pcm",
            "invalid_audio",
        )
    if len(upload.data) % 2:
        raise BadRequest("file", "raw PCM16 has an odd number of bytes", "invalid_audio")
    declared = re.search(r"rate=(\d+)", content_type)
    rate_text = fields.get("sample_rate") or (declared.group(1) if declared else str(SAMPLE_RATE))
    try:
        rate = int(rate_text)
    except ValueError:
        raise BadRequest("sample_rate", f"{_shown(rate_text)} is not a whole number of Hz") from None
    return upload.data, _checked_rate(rate, "sample_rate")


def _checked_rate(rate: int, param: str) -> int:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadRequest(param, f"sample rate {rate} Hz is not supported: {MIN_RATE} to {MAX_RATE} Hz", "bad_rate")
    return rate


def speech_request(body: object, max_chars: int) -> SpeechRequest:
    if not isinstance(body, dict):
        raise BadRequest("body", "a JSON object is required")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("input", "the text to speak is required (a non-empty string)", "missing_field")
    if not re.search(r"\w", text):
        raise BadRequest("input", "there are no words to speak", "missing_field")
    if len(text) > max_chars:
        raise BadRequest("input", f"{len(text)} characters; at most {max_chars}")
    voice = body.get("voice", "joe")
    if not isinstance(voice, str) or voice.lower() not in VOICES:
        raise BadRequest("voice", f"{_shown(voice)} is not a voice here; one of {', '.join(sorted(VOICES))}")
    response_format = body.get("response_format", "pcm")
    if response_format not in SPEECH_FORMATS:
        raise BadRequest("response_format", f"{_shown(response_format)} is not one of {', '.join(SPEECH_FORMATS)}")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed):
        raise BadRequest("speed", f"{_shown(speed)} is not a number")
    if not 0.25 <= speed <= 4.0:
        raise BadRequest("speed", f"{speed} is outside 0.25 to 4.0")
    rate = body.get("sample_rate", OPENAI_PCM_RATE)
    if isinstance(rate, bool) or rate not in SPEECH_RATES:
        raise BadRequest("sample_rate", f"{_shown(rate)} is not one of {', '.join(map(str, SPEECH_RATES))}")
    return SpeechRequest(text, voice.lower(), cast(SpeechFormat, response_format), float(speed), int(rate))
