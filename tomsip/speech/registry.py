"""Pipelines by name (TOMSIP_PIPELINE and the dialplan's `pipeline`). Built once per process."""

from __future__ import annotations

from collections.abc import Callable

from tomsip.speech.stages import Pipeline


def _mock() -> Pipeline:
    from tomsip.speech.mock import build_mock_pipeline

    return build_mock_pipeline()


BUILDERS: dict[str, Callable[[], Pipeline]] = {"mock": _mock}


class UnknownPipeline(ValueError):
    pass


def build_pipeline(name: str) -> Pipeline:
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise UnknownPipeline(f"unknown pipeline {name!r}; known: {', '.join(sorted(BUILDERS))}") from None
    return builder()
