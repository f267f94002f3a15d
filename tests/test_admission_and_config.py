"""Token buckets, admission, dialplans, settings, header parsing and log masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from tomsip.call.dialplan import DialplanError, Dialplans, load_file
from tomsip.monitor.logs import mask_number, mask_uri
from tomsip.security.token_bucket import KeyedTokenBuckets, TokenBucket
from tomsip.settings import Settings
from tomsip.sip.admission import Admission
from tomsip.sip.headers import uri_user, via_source

ROOT = Path(__file__).resolve().parents[1]


def test_token_bucket_bursts_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.allow(0.4)
    assert bucket.allow(0.5)
    assert bucket.allow(100.0) and bucket.allow(100.0) and bucket.allow(100.0)
    assert not bucket.allow(100.0)


def test_token_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=10.0)
    assert bucket.allow(10.0)
    assert not bucket.allow(5.0)


def test_keyed_buckets_are_per_key_and_bounded() -> None:
    buckets = KeyedTokenBuckets(rate=1, burst=1, max_keys=100)
    assert buckets.allow("a", 0.0) and not buckets.allow("a", 0.0)
    assert buckets.allow("b", 0.0)
    for i in range(1000):
        buckets.allow(f"spoofed-{i}", 1.0)
    assert len(buckets) <= 100


def test_admission_reasons() -> None:
    admission = Admission(max_calls=2, invite_rate=1, invite_burst=2)
    assert admission.refuse_reason("10.0.0.1", 0, 0.0) is None
    assert admission.refuse_reason("10.0.0.1", 2, 0.0) == "capacity"
    assert admission.refuse_reason("10.0.0.1", 0, 0.0) == "rate"
    assert admission.refuse_reason("10.0.0.2", 1, 0.0) is None


def test_dialplan_routing_prefers_exact_then_longer_patterns(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('name = "catchall"\ndefault = true\n')
    (tmp_path / "b.toml").write_text('name = "berlin"\nnumbers = ["+4930*"]\n')
    (tmp_path / "c.toml").write_text('name = "desk"\nnumbers = ["+49301234", "regex:^9[0-9]{2}$"]\n')
    plans = Dialplans.load(tmp_path, "mock")
    assert plans.route("+4930999").plan.name == "berlin"  # type: ignore[union-attr]
    assert plans.route("+49301234").plan.name == "desk"  # type: ignore[union-attr]
    assert plans.route("912").plan.name == "desk"  # type: ignore[union-attr]
    assert plans.route("555").plan.name == "catchall"  # type: ignore[union-attr]
    assert plans.route("555").pipeline == "mock"  # type: ignore[union-attr]


def test_without_a_default_an_unmatched_number_has_no_route(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text('name = "only"\nnumbers = ["100"]\n')
    assert Dialplans.load(tmp_path, "mock").route("200") is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name = 'x'\n[settings]\nsilence_ms = 5\n", "field settings.silence_ms"),
        ("name = 'x'\ncolour = 'red'\n", "field colour"),
        ("name = 'x'\nnumbers = ['regex:(']\n", "field numbers"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_a_bad_dialplan_names_its_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(DialplanError) as excinfo:
        load_file(path)
    assert str(path) in str(excinfo.value) and needle in str(excinfo.value)


def test_two_defaults_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('name = "a"\ndefault = true\n')
    (tmp_path / "b.toml").write_text('name = "b"\ndefault = true\n')
    with pytest.raises(DialplanError, match="more than one"):
        Dialplans.load(tmp_path, "mock")


def test_shipped_dialplans_load() -> None:
    for folder in (ROOT / "dialplans", ROOT / "tests" / "dialplans"):
        assert Dialplans.load(folder, "mock").route("anything") is not None


def test_settings_from_environment_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tomsip.toml"
    config.write_text('sip_port = 5070\nmax_calls = 7\ncodecs = ["pcma"]\n')
    monkeypatch.setenv("TOMSIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("TOMSIP_MAX_CALLS", "9")
    monkeypatch.setenv("TOMSIP_CODECS", "pcmu, G722")
    settings = Settings()
    assert settings.sip_port == 5070  # from the file
    assert settings.max_calls == 9  # the environment wins over the file
    assert settings.codecs == ["pcmu", "g722"]


def test_settings_refuse_what_the_engine_cannot_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="sip_port\\+1"):
        Settings(sip_port=5060, sip_tls_port=5090, sip_tls_cert=Path("x.pem"))
    with pytest.raises(ValueError, match="codecs"):
        Settings(codecs=["g729"])
    with pytest.raises(ValueError, match="rtp_ports"):
        Settings(rtp_ports="99999-1")
    with pytest.raises(ValueError, match="max_calls"):
        Settings(max_calls=251)  # the stack's 255 lines per user agent, less room for refusals
    with pytest.raises(ValueError, match="trunk_user"):
        Settings(trunk_registrar="sip.example.net")


def test_header_parsing() -> None:
    assert uri_user("<sip:+4930123@10.0.0.1:5060>;tag=1") == "+4930123"
    assert uri_user('"Desk" <sips:frontdesk@example.com>') == "frontdesk"
    assert uri_user(None) == ""
    assert via_source("SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1") == "127.0.0.1"
    assert via_source("SIP/2.0/TCP [::1]:5060;branch=x") == "::1"
    assert via_source("SIP/2.0/UDP 10.0.0.5:5060;received=203.0.113.9;branch=x, SIP/2.0/UDP a") == "203.0.113.9"
    assert via_source("garbage") == "unknown"


def test_numbers_are_masked_in_logs() -> None:
    assert mask_number("+4930123456") == "*********56"
    assert mask_uri("sip:+4930123456@10.0.0.1:5060") == "sip:*********56@10.0.0.1:5060"
    assert mask_uri("sip:alice@example.com:5099") == "sip:alice@example.com:5099"
    assert mask_uri(None) == "-"
