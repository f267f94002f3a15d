"""`tomsip` command line. `tomsip serve --help` lists every setting; each option also reads from its
TOMSIP_* environment variable and from the TOML file named by --config / TOMSIP_CONFIG_FILE."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from pydantic import BaseModel, ValidationError

from tomsip.settings import Settings

log = logging.getLogger("tomsip")


def _add_settings_options(
    parser: argparse.ArgumentParser, model: type[BaseModel] = Settings, env_prefix: str = "TOMSIP_"
) -> None:
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = env_prefix + name.upper()
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else default
        help_text = f"{field.description or ''} [env {env}; default {shown}]".replace("%", "%%")
        parser.add_argument(flag, dest=name, default=None, metavar=name.split("_")[-1].upper(), help=help_text)


def _settings_from_args(args: argparse.Namespace) -> Settings:
    if getattr(args, "config", None):
        os.environ["TOMSIP_CONFIG_FILE"] = args.config
    overrides: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value.split(",") if name == "codecs" else value
    return Settings(**overrides)


async def _serve(settings: Settings) -> int:
    from tomsip.app import App

    app = App(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    await stop.wait()
    log.info("signal received: draining")
    await app.drain()
    await app.stop()
    return 0


def _exit_after_drain(code: int) -> int:
    """Leave at once once the server has drained and stopped: every call ended, the store flushed and
    closed, the SIP runtime closed. What remains is interpreter finalization, which would collect the
    native stack's and the models' objects after their libraries were torn down; a crash there must
    not turn a clean drain into a failed exit (an orchestrator reads the status)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _speech_worker(args: argparse.Namespace) -> int:
    """`tomsip speech-worker`: the offline models behind the OpenAI-compatible audio API."""
    from tomsip.monitor.logs import setup_logging
    from tomsip.speech.stages import PipelineError
    from tomsip.speech.worker.server import serve_worker
    from tomsip.speech.worker.settings import WorkerSettings

    try:
        overrides = {name: getattr(args, name) for name in WorkerSettings.model_fields if getattr(args, name, None)}
        settings = WorkerSettings(**overrides)
    except ValidationError as exc:
        print(f"tomsip speech-worker: bad settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        code = asyncio.run(serve_worker(settings))
    except (PipelineError, OSError) as exc:
        log.error("speech worker start-up failed: %s", exc)
        print(f"tomsip speech-worker: {exc}", file=sys.stderr)
        return 2
    return _exit_after_drain(code)


def _calibrate(settings: Settings) -> int:
    """Load the configured pipeline's models, time them, and print the conversation limit they give."""
    from tomsip.monitor.metrics import Metrics
    from tomsip.speech.registry import build_pipeline
    from tomsip.speech.stages import PipelineError

    try:
        pipeline = build_pipeline(settings.pipeline, settings, Metrics())
    except PipelineError as exc:
        print(f"tomsip calibrate: {exc}", file=sys.stderr)
        return 2
    measured = pipeline.calibrate(settings.speech_cpu_budget)
    if measured is None:
        print(
            f"pipeline {pipeline.name}: no local inference; conversations are limited by TOMSIP_MAX_CALLS "
            f"({settings.max_calls})"
        )
        return 0
    print(f"pipeline {pipeline.name}: {measured.describe()}")
    print(f"recommended: TOMSIP_MAX_CONVERSATIONS={min(measured.conversations, settings.max_calls)}")
    return 0


def _mint(args: argparse.Namespace, settings: Settings) -> int:
    from tomsip.security.tokens import mint

    algorithm = args.algorithm or settings.jwt_algorithms[0]
    if algorithm.startswith("HS"):
        if settings.jwt_secret is None:
            print("tomsip token: set TOMSIP_JWT_SECRET (or use --private-key with RS256/ES256)", file=sys.stderr)
            return 2
        key = settings.jwt_secret.get_secret_value()
    elif args.private_key:
        with open(args.private_key) as fh:
            key = fh.read()
    else:
        print(f"tomsip token: {algorithm} needs --private-key", file=sys.stderr)
        return 2
    print(mint(key, algorithm, args.call_id, args.sub, args.ttl, args.to))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tomsip", description="Realtime phone-assistant server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="answer SIP calls and serve HTTP",
        description="Answer SIP calls with the configured speech pipeline; SIGTERM drains gracefully.",
    )
    serve.add_argument("--config", help="TOML settings file (env TOMSIP_CONFIG_FILE)")
    _add_settings_options(serve)
    from tomsip import learn_command as learn_commands

    learn_commands.add_parser(sub)
    from tomsip.outbound import dial_command

    dial_command.add_parser(sub)
    from tomsip.recording import command as recordings_command

    recordings_command.add_parser(sub)
    calibrate = sub.add_parser(
        "calibrate",
        help="time the speech models and print how many conversations this machine carries",
        description="Loads the models of TOMSIP_PIPELINE, times a recognition and a synthesis, and prints "
        "the conversation limit that `tomsip serve` would use (TOMSIP_SPEECH_CPU_BUDGET scales it).",
    )
    calibrate.add_argument("--config", help="TOML settings file (env TOMSIP_CONFIG_FILE)")
    _add_settings_options(calibrate)
    worker = sub.add_parser(
        "speech-worker",
        help="serve the offline speech models over the OpenAI-compatible audio API",
        description="POST /v1/audio/transcriptions and /v1/audio/speech (whisper and piper, batched, with a "
        "bounded queue answered 503), GET /healthz and /metrics. tomsip nodes use it through TOMSIP_STT_URLS "
        "and TOMSIP_TTS_URLS. SIGTERM drains and exits 0.",
    )
    from tomsip.speech.worker.settings import WorkerSettings

    _add_settings_options(worker, WorkerSettings, "TOMSIP_WORKER_")
    token = sub.add_parser(
        "token",
        help="mint a development browser token",
        description="Mint a JWT for /ws/stream/{call_id} from TOMSIP_JWT_SECRET (HS*) or --private-key (RS*/ES*).",
    )
    token.add_argument("--config", help="TOML settings file (env TOMSIP_CONFIG_FILE)")
    token.add_argument("--call-id", required=True, help="the conversation id the token is for")
    token.add_argument("--sub", required=True, help="who the token is for")
    token.add_argument("--ttl", type=int, default=300, help="seconds until it expires (default 300)")
    token.add_argument("--to", default="", help="the number (dialplan) the browser calls; default plan if unset")
    token.add_argument("--private-key", help="PEM private key file for RS256/ES256")
    token.add_argument("--algorithm", help="default: the first of TOMSIP_JWT_ALGORITHMS")
    args = parser.parse_args(argv)
    if args.command == "speech-worker":
        return _speech_worker(args)
    if args.command == "dial":
        return dial_command.run(args)

    from tomsip.monitor.logs import setup_logging

    try:
        settings = _settings_from_args(args)
    except (ValidationError, OSError, ValueError) as exc:
        print(f"tomsip: bad settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    if args.command == "serve":
        from tomsip.call.dialplan import DialplanError
        from tomsip.recording.folder import RecordingFolderError
        from tomsip.sip.baresip_engine import EngineStartError
        from tomsip.speech.stages import PipelineError

        try:
            code = asyncio.run(_serve(settings))
        except (DialplanError, EngineStartError, PipelineError, RecordingFolderError) as exc:
            log.error("start-up failed: %s", exc)
            print(f"tomsip: {exc}", file=sys.stderr)
            return 2
        return _exit_after_drain(code)
    if args.command == "token":
        return _mint(args, settings)
    if args.command == "recordings":
        return recordings_command.run(args, settings)
    if args.command == "calibrate":
        return _calibrate(settings)
    if args.command == "learn":
        from tomsip.call.dialplan import DialplanError
        from tomsip.store.base import StoreUnavailable

        try:
            return asyncio.run(learn_commands.run(args, settings))
        except (DialplanError, StoreUnavailable) as exc:
            print(f"tomsip learn: {exc}", file=sys.stderr)
            return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
