"""Dialplans: which called number gets which greeting, pipeline and conversation settings.

Each dialplans/*.toml file is one dialplan. A called number is matched against every plan's `numbers`
(exact digits, shell-style patterns such as "+4930*" or "1??", or "regex:..."); an exact match beats a
pattern, a longer pattern beats a shorter one, and the plan with `default = true` catches the rest.
A file that does not parse or validate stops start-up with its path and the offending field.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tomsip.call.fsm import FsmConfig
from tomsip.call.turn_taking import TurnTakingPolicy
from tomsip.learn.policies import DEFAULT_POLICY, LearningModel, PolicyModel, check_policies


class DialplanError(ValueError):
    pass


class ConversationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_after_ms: int = Field(0, ge=0, le=60_000, description="Let the call ring this long before answering")
    silence_ms: int = Field(
        600, ge=100, le=5000, description="End of utterance after this much silence when it sounds unfinished"
    )
    speculate_after_ms: int = Field(
        160, ge=0, le=2000, description="Transcribe during a pause this long (0: fixed silence rule only)"
    )
    complete_silence_ms: int = Field(
        200, ge=20, le=5000, description="Silence that ends an utterance whose transcript is a complete sentence"
    )
    short_answer_silence_ms: int = Field(
        450, ge=20, le=5000, description="Silence that ends a short answer (yes, no thanks, okay)"
    )
    digits_silence_ms: int = Field(
        1500, ge=100, le=10_000, description="Silence that ends an utterance while the caller reads out digits"
    )
    tail_drop_db: float = Field(
        30.0, ge=0, le=90, description="Inside an utterance, this far under its loudest frame is silence (0: off)"
    )
    echo_return_loss_db: float = Field(
        12.0, ge=0, le=60, description="How far down the line returns our own audio (echo gate for barge-in)"
    )
    onset_ms: int = Field(40, ge=20, le=1000, description="Voiced time before speech counts as started")
    barge_in: bool = True
    barge_in_min_ms: int = Field(
        200, ge=20, le=3000, description="Caller speech that confirms a barge-in (playout pauses at onset)"
    )
    resume_after_ms: int = Field(160, ge=20, le=2000, description="Quiet that withdraws a tentative barge-in")
    max_utterance_ms: int = Field(20_000, ge=1000, le=120_000)
    max_call_s: int = Field(600, ge=5, le=86_400)
    no_input_s: int = Field(10, ge=2, le=600)
    max_no_input_prompts: int = Field(2, ge=0, le=10)


class OutboundModel(BaseModel):
    """What a dialplan says when tomsip places the call (POST /api/calls). `{name}` in a text is filled
    from the call's context variables; one the call does not give stays as written."""

    model_config = ConfigDict(extra="forbid")

    greeting: str | None = Field(None, description="The first words to the person who answers (default: greeting)")
    voicemail_message: str = Field("", description="Left on an answering machine; empty: hang up on a machine")
    detect_machine: bool = Field(True, description="Listen for who answered before speaking (about 1-3 s)")
    ring_s: int | None = Field(None, ge=5, le=300, description="Give up after ringing this long (default setting)")


class RecordingModel(BaseModel):
    """Whether calls on this plan are recorded: never without the caller's consent."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "announce", "ask"] = Field(
        "off", description="announce: recorded unless the caller declines; ask: only after a yes"
    )
    notice: str = Field("This call is recorded. To continue without recording, say no or press 2.", min_length=1)
    question: str = Field(
        "May I record this call? Please say yes or no, or press 1 for yes and 2 for no.", min_length=1
    )
    wait_s: float = Field(3.0, ge=0.5, le=30, description="After the notice or question: time to decline or answer")
    accept_digit: str = Field("1", pattern=r"^[0-9*#]$")
    decline_digit: str = Field("2", pattern=r"^[0-9*#]$")

    @property
    def prompt(self) -> str:
        return self.notice if self.mode == "announce" else self.question


class TransferModel(BaseModel):
    """How "a person, please" hands the caller over (to the responder's transfer_uri)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["blind", "warm"] = Field(
        "blind", description="blind: REFER at once; warm: hold the caller, call and brief the agent, then connect"
    )
    ring_s: int = Field(20, ge=5, le=120, description="warm: give up on the agent after ringing this long")
    accept_digit: str = Field("", pattern=r"^[0-9*#]?$", description="warm: the agent accepts with this key")
    accept_s: float = Field(10.0, ge=2, le=60, description="warm: time the agent has to press it")
    take_message: bool = Field(True, description="warm: when nobody takes it, offer to take a message")


class DialplanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    numbers: list[str] = Field(default_factory=list)
    default: bool = False
    pipeline: str | None = None
    greeting: str = "Hello, how can I help?"
    settings: ConversationSettings = Field(default_factory=ConversationSettings)
    options: dict[str, Any] = Field(default_factory=dict)
    policies: list[PolicyModel] = Field(default_factory=list)
    learning: LearningModel = Field(default_factory=LearningModel)
    outbound: OutboundModel = Field(default_factory=OutboundModel)
    recording: RecordingModel = Field(default_factory=RecordingModel)
    transfer: TransferModel = Field(default_factory=TransferModel)

    @model_validator(mode="after")
    def _policies_consistent(self) -> DialplanModel:
        check_policies(self.policies, self.learning)
        return self

    @property
    def baseline(self) -> str:
        if self.learning.baseline:
            return self.learning.baseline
        return self.policies[0].name if self.policies else DEFAULT_POLICY

    @property
    def policy_names(self) -> list[str]:
        return [p.name for p in self.policies] or [DEFAULT_POLICY]

    @field_validator("numbers")
    @classmethod
    def _patterns_compile(cls, numbers: list[str]) -> list[str]:
        for pattern in numbers:
            if not pattern:
                raise ValueError("an empty number pattern")
            if pattern.startswith("regex:"):
                try:
                    re.compile(pattern[len("regex:") :])
                except re.error as exc:
                    raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        return numbers


@dataclass(frozen=True)
class Route:
    """A resolved dialplan, ready for a CallSession."""

    plan: DialplanModel
    pipeline: str
    source: Path | None
    policy: str = ""  # the conversation policy applied (with_policy); "" before one is chosen
    outbound: bool = False  # tomsip placed this call (answer detection, the [outbound] words)

    def with_policy(self, name: str) -> Route:
        """This route as policy `name` changes it (greeting, settings, pipeline options)."""
        policy = next((p for p in self.plan.policies if p.name == name), None)
        if policy is None:
            return Route(self.plan, self.pipeline, self.source, name, self.outbound)
        plan = self.plan.model_copy(
            update={
                "greeting": policy.greeting or self.plan.greeting,
                "settings": self.plan.settings.model_copy(update=policy.settings_update()),
                "options": {**self.plan.options, **policy.options_update()},
            }
        )
        return Route(plan, self.pipeline, self.source, name, self.outbound)

    def placed(self) -> Route:
        """This route for a call tomsip places."""
        return Route(self.plan, self.pipeline, self.source, self.policy, outbound=True)

    @property
    def fsm_config(self) -> FsmConfig:
        s = self.plan.settings
        return FsmConfig(
            barge_in_min_ms=s.barge_in_min_ms,
            barge_in_enabled=s.barge_in,
            resume_after_ms=s.resume_after_ms,
            max_call_ms=s.max_call_s * 1000,
            no_input_ms=s.no_input_s * 1000,
            max_no_input_prompts=s.max_no_input_prompts,
            ask_rating=self.plan.learning.ask_rating,
            rating_timeout_ms=int(self.plan.learning.rating_timeout_s * 1000),
            detect_answer=self.outbound and self.plan.outbound.detect_machine,
            leave_voicemail=bool(self.plan.outbound.voicemail_message),
            recording=self.plan.recording.mode,
            warm_transfer=self.plan.transfer.mode == "warm",
            warm_transfer_guard_ms=int((self.plan.transfer.ring_s + self.plan.transfer.accept_s + 60) * 1000),
            take_message=self.plan.transfer.take_message,
            consent_wait_ms=int(self.plan.recording.wait_s * 1000),
            accept_digit=self.plan.recording.accept_digit,
            decline_digit=self.plan.recording.decline_digit,
        )

    @property
    def turn_taking(self) -> TurnTakingPolicy:
        s = self.plan.settings
        return TurnTakingPolicy(
            s.silence_ms, s.speculate_after_ms, s.complete_silence_ms, s.digits_silence_ms, s.short_answer_silence_ms
        )


def _score(pattern: str, number: str) -> int | None:
    """How specifically `pattern` matches `number` (higher is better); None: no match."""
    if pattern.startswith("regex:"):
        return 1000 + len(pattern) if re.fullmatch(pattern[len("regex:") :], number) else None
    if pattern == number:
        return 1_000_000
    if fnmatch.fnmatchcase(number, pattern):
        return 1000 + len(pattern.replace("*", ""))
    return None


class Dialplans:
    def __init__(self, plans: Sequence[tuple[DialplanModel, Path | None]], default_pipeline: str) -> None:
        defaults = [p for p, _ in plans if p.default]
        if len(defaults) > 1:
            raise DialplanError("more than one dialplan has default = true: " + ", ".join(p.name for p in defaults))
        names = [p.name for p, _ in plans]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise DialplanError(f"dialplan names must be unique; repeated: {', '.join(sorted(dupes))}")
        self._plans = plans
        self._default_pipeline = default_pipeline
        self._default = next(((p, src) for p, src in plans if p.default), None)

    @classmethod
    def load(cls, folder: Path, default_pipeline: str) -> Dialplans:
        if not folder.is_dir():
            raise DialplanError(f"dialplan folder {folder} does not exist")
        plans = [(load_file(path), path) for path in sorted(folder.glob("*.toml"))]
        if not plans:
            raise DialplanError(f"no dialplan *.toml files in {folder}")
        return cls(plans, default_pipeline)

    @classmethod
    def builtin(cls, default_pipeline: str) -> Dialplans:
        return cls([(DialplanModel(name="builtin-default", default=True), None)], default_pipeline)

    def pipelines(self) -> set[str]:
        return {p.pipeline or self._default_pipeline for p, _ in self._plans}

    def routes(self) -> list[Route]:
        """Every plan under every one of its policies (for start-up checks)."""
        return [
            Route(p, p.pipeline or self._default_pipeline, src).with_policy(name)
            for p, src in self._plans
            for name in p.policy_names
        ]

    def plans(self) -> list[DialplanModel]:
        return [p for p, _ in self._plans]

    def named(self, name: str) -> Route | None:
        """The dialplan called `name` (an outbound call names its plan)."""
        found = next(((p, src) for p, src in self._plans if p.name == name), None)
        if found is None:
            return None
        plan, src = found
        return Route(plan, plan.pipeline or self._default_pipeline, src)

    def route(self, number: str) -> Route | None:
        best: tuple[int, DialplanModel, Path | None] | None = None
        for plan, src in self._plans:
            for pattern in plan.numbers:
                score = _score(pattern, number)
                if score is not None and (best is None or score > best[0]):
                    best = (score, plan, src)
        if best is not None:
            _, plan, src = best
        elif self._default is not None:
            plan, src = self._default
        else:
            return None
        return Route(plan, plan.pipeline or self._default_pipeline, src)


def load_file(path: Path) -> DialplanModel:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise DialplanError(f"{path}: not valid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    try:
        return DialplanModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise DialplanError(f"{path}: field {where}: {first['msg']}") from None
