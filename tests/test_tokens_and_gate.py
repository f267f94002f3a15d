"""Token verification with each key type, the settings that guard it, and how the gate reads the
token and the client's address (unit level; the refusals over the wire are in test_browser_stream)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from aiohttp.test_utils import make_mocked_request
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tomsip.bridge.gate import CALL_ID, BrowserGate, GateConfig, token_of
from tomsip.monitor.metrics import Metrics
from tomsip.security.tokens import AuthRefused, TokenVerifier, load_key, mint
from tomsip.settings import Settings
from tomsip.store.call_ids import CallIdClaimer
from tomsip.store.memory import MemoryStore


def claims(call_id: str = "c1", **extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "u", "call_id": call_id, "iat": now, "exp": now + 60, "nonce": "abcdefgh12345678", **extra}


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
def test_public_key_tokens_verify_and_a_forged_one_does_not(tmp_path: Path, kind: str) -> None:
    private = rsa.generate_private_key(65537, 2048) if kind == "RS256" else ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(public_pem)
    verifier = TokenVerifier(load_key(None, str(tmp_path / "pub.pem")), [kind])
    good = jwt.encode(claims(), private, algorithm=kind)
    assert verifier.verify(good, "c1").sub == "u"
    other = rsa.generate_private_key(65537, 2048) if kind == "RS256" else ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AuthRefused) as refused:
        verifier.verify(jwt.encode(claims(), other, algorithm=kind), "c1")
    assert refused.value.reason == "bad_signature"
    # Algorithm confusion: an HS256 token signed with the public key as the secret is refused.
    confused = jwt.api_jws.PyJWS().encode(b'{"sub":"u"}', key=b"x" * 32, algorithm="HS256")
    with pytest.raises(AuthRefused) as refused:
        verifier.verify(confused, "c1")
    assert refused.value.reason == "alg_not_allowed"


def test_leeway_and_minted_tokens() -> None:
    verifier = TokenVerifier("k" * 32, ["HS256"], leeway_s=30)
    now = time.time()
    late = mint("k" * 32, "HS256", "c1", "u", ttl_s=60, now=now - 75)  # expired 15 s ago, inside leeway
    assert verifier.verify(late, "c1").call_id == "c1"
    with pytest.raises(AuthRefused, match="expired"):
        TokenVerifier("k" * 32, ["HS256"], leeway_s=0).verify(late, "c1")
    with pytest.raises(AuthRefused, match="malformed"):
        verifier.verify(jwt.encode(claims(nonce="short"), "k" * 32, algorithm="HS256"), "c1")


def test_settings_refuse_none_and_mixed_key_types() -> None:
    with pytest.raises(ValidationError, match="jwt_algorithms"):
        Settings(jwt_algorithms="none")
    with pytest.raises(ValidationError, match="one key type"):
        Settings(jwt_algorithms="HS256,RS256")
    with pytest.raises(ValueError):
        TokenVerifier("k", ["HS256", "none"])


def test_the_token_comes_from_the_query_a_subprotocol_or_a_bearer_header() -> None:
    tok = "aaa.bbb.ccc"
    assert token_of(make_mocked_request("GET", f"/ws/stream/c1?token={tok}")) == tok
    proto = make_mocked_request("GET", "/ws/stream/c1", headers={"Sec-WebSocket-Protocol": f"tomsip, {tok}"})
    assert token_of(proto) == tok
    assert token_of(make_mocked_request("GET", "/x", headers={"Authorization": f"Bearer {tok}"})) == tok
    assert token_of(make_mocked_request("GET", "/x")) is None


def test_forwarded_addresses_are_believed_only_from_trusted_proxies() -> None:
    def gate(trusted: str) -> BrowserGate:
        proxies = tuple(Settings(trusted_proxies=trusted).trusted_proxies)
        store = MemoryStore()
        return BrowserGate(GateConfig(10, 10, proxies, 0), None, store, Metrics(), CallIdClaimer(store, "n", 30))

    mocked = make_mocked_request("GET", "/ws/stream/c1", headers={"X-Forwarded-For": "203.0.113.9"})
    request = mocked.clone(remote="127.0.0.1")
    assert gate("").source(request) == "127.0.0.1", "an untrusted peer cannot choose its rate-limit bucket"
    assert gate("127.0.0.1").source(request) == "203.0.113.9"


def test_tomsip_token_mints_what_the_server_accepts(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    secret = "cli-secret-" + "x" * 40
    env = {**os.environ, "TOMSIP_JWT_SECRET": secret}
    out = subprocess.run(
        [sys.executable, "-m", "tomsip", "token", "--call-id", "demo-1", "--sub", "me", "--ttl", "60", "--to", "1000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr
    claims = TokenVerifier(secret, ["HS256"]).verify(out.stdout.strip(), "demo-1")
    assert (claims.sub, claims.to) == ("me", "1000") and claims.exp - time.time() <= 60
    without = subprocess.run(
        [sys.executable, "-m", "tomsip", "token", "--call-id", "x", "--sub", "me"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TOMSIP_JWT_SECRET"},
        timeout=60,
    )
    assert without.returncode == 2 and "TOMSIP_JWT_SECRET" in without.stderr


# ---- hostile tokens: every input ends as AuthRefused, never as another exception ----

SECRET = "s" * 32
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header: dict[str, object], payload: object, secret: str = SECRET) -> str:
    """A token as an attacker builds it: any JSON in header and payload, correctly signed."""
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    mac = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + b64(mac)


def refused_or_claims(token: str) -> str:
    try:
        TokenVerifier(SECRET, ["HS256"]).verify(token, "c1")
    except AuthRefused as exc:
        return exc.reason
    return "ok"


@settings(max_examples=300, deadline=None)
@given(
    header_extra=st.dictionaries(st.sampled_from(["kid", "crit", "typ", "cty", "jku", "x5u", "b64"]), JSON),
    claim_values=st.dictionaries(st.sampled_from(["sub", "call_id", "iat", "exp", "nbf", "nonce", "to"]), JSON),
)
def test_any_signed_header_and_claims_are_refused_or_taken_never_raised(
    header_extra: dict[str, object], claim_values: dict[str, object]
) -> None:
    payload = {**claims(), **claim_values}
    reason = refused_or_claims(signed({"alg": "HS256", "typ": "JWT", **header_extra}, payload))
    assert reason in {
        "ok",
        "malformed",
        "expired",
        "not_yet_valid",
        "lifetime_too_long",
        "missing_claim",
        "call_id_mismatch",
        "bad_signature",
        "alg_not_allowed",
    }


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape")))
def test_any_string_as_a_token_is_refused_never_raised(token: str) -> None:
    assert refused_or_claims(token) != "ok"


@pytest.mark.parametrize(
    ("header", "payload", "reason"),
    [
        ({"alg": "HS256", "kid": 7}, lambda: claims(), "malformed"),
        ({"alg": "HS256", "kid": None}, lambda: claims(), "malformed"),
        ({"alg": "HS256", "kid": {"a": 1}}, lambda: claims(), "malformed"),
        ({"alg": "HS256", "crit": ["exp"]}, lambda: claims(), "malformed"),
        ({"alg": "HS256"}, lambda: claims(exp=str(int(time.time()) + 60)), "malformed"),  # a numeric string
        ({"alg": "HS256"}, lambda: claims(iat=True), "malformed"),
        ({"alg": "HS256"}, lambda: claims(nbf="0"), "malformed"),
        ({"alg": "HS256"}, lambda: claims(exp=1e300), "lifetime_too_long"),
        ({"alg": "HS256"}, lambda: claims(exp=float("inf")), "malformed"),  # json.dumps writes Infinity
        ({"alg": "HS256"}, lambda: claims(exp=int(time.time()) + 3600), "lifetime_too_long"),
        ({"alg": "HS256"}, lambda: claims(sub=5), "malformed"),
        ({"alg": "HS256"}, lambda: claims(call_id=["c1"]), "malformed"),
        ({"alg": "HS256"}, lambda: claims(to=5), "malformed"),
        ({"alg": "HS256"}, lambda: claims(nbf=time.time() + 600), "not_yet_valid"),
        ({"alg": "HS256"}, lambda: [1, 2], "malformed"),
    ],
)
def test_hostile_headers_and_claims_get_their_reason(
    header: dict[str, object], payload: Callable[[], object], reason: str
) -> None:
    """The payloads are made when the test runs: their times are relative to now."""
    assert refused_or_claims(signed(header, payload())) == reason


def test_a_token_within_the_lifetime_is_taken() -> None:
    now = int(time.time())
    assert refused_or_claims(signed({"alg": "HS256"}, claims(iat=now, exp=now + 900))) == "ok"
    short = TokenVerifier(SECRET, ["HS256"], max_lifetime_s=60)
    with pytest.raises(AuthRefused, match="lifetime_too_long"):
        short.verify(signed({"alg": "HS256"}, claims(iat=now, exp=now + 120)), "c1")


def test_public_key_types_cannot_be_mixed_either() -> None:
    with pytest.raises(ValidationError, match="one key type"):
        Settings(jwt_algorithms="RS256,ES256")
    assert Settings(jwt_algorithms="RS256,RS384").jwt_algorithms == ["RS256", "RS384"]


def test_a_call_id_with_a_trailing_newline_is_not_a_call_id() -> None:
    assert CALL_ID.fullmatch("demo-1") and not CALL_ID.fullmatch("demo-1\n") and not CALL_ID.fullmatch("a b")
