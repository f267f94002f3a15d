"""Browser tokens: JWT verification with an algorithm allow-list, and minting for development.

A browser proves who it is with a JWT it got from the operator's own backend (or `tomsip token` in
development): HS256 with a shared secret, or RS256/ES256 signed by a private key whose public half
tomsip holds. The claims must include sub, call_id (equal to the conversation the URL names), iat,
exp and nonce, typed as RFC 7519 says, and exp may lie at most TOMSIP_JWT_MAX_LIFETIME_S after iat so
that a replay window stays short even if the nonce store is lost. Verification is pure and
synchronous; the one-time use of the nonce is the caller's job (the store, shared by every node), because it needs I/O.

Every refusal has one specific reason, used for the HTTP 401 body, the close reason and the
`tomsip_auth_failures_total{reason}` metric. The token itself never appears in a log or an error.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

REQUIRED_CLAIMS = ("sub", "call_id", "iat", "exp", "nonce")
MAX_TOKEN_BYTES = 4096
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")  # base64url, ASCII only


class AuthRefused(Exception):
    """A token was refused; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Claims:
    sub: str
    call_id: str
    nonce: str
    exp: float
    to: str = ""  # optional: the number (dialplan) the browser calls; "" for the default plan


def load_key(secret: str | None, public_key: str | None) -> str:
    """The verification key: the HS secret, or a PEM public key given inline or as a file path."""
    if public_key:
        if "-----BEGIN" in public_key:
            return public_key
        return Path(public_key).read_text()
    if secret:
        return secret
    raise AuthRefused("auth_not_configured", "set TOMSIP_JWT_SECRET or TOMSIP_JWT_PUBLIC_KEY")


class TokenVerifier:
    """Checks a token's shape, header, signature and claims, each with its own refusal reason.

    PyJWT checks the signature and that the required claims are present; the time claims are checked
    here, because RFC 7519 makes exp, iat and nbf JSON numbers and PyJWT also takes a numeric string.
    Whatever a client puts in the header or the claims ends as AuthRefused, never as another exception.
    """

    def __init__(self, key: str, algorithms: list[str], leeway_s: float = 10.0, max_lifetime_s: float = 900.0) -> None:
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ValueError("an algorithm allow-list is required, and it may never include none")
        self._key = key
        self._algorithms = list(algorithms)
        self._leeway = leeway_s
        self._max_lifetime = max_lifetime_s

    def verify(self, token: str | None, call_id: str, now: float | None = None) -> Claims:
        if not token:
            raise AuthRefused("no_token")
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthRefused("malformed", "token too long")
        if not COMPACT_JWS.fullmatch(token):
            raise AuthRefused("malformed", "not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise AuthRefused("malformed", "header") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthRefused("alg_not_allowed", str(alg)[:20])
        if "crit" in header:  # RFC 7515 4.1.11: extensions we do not understand must be refused
            raise AuthRefused("malformed", "crit header")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise AuthRefused("bad_signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthRefused("missing_claim", exc.claim) from None
        except (jwt.InvalidKeyError, jwt.InvalidAlgorithmError):
            raise AuthRefused("alg_not_allowed") from None
        except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError):
            raise AuthRefused("malformed") from None
        return self._typed(claims, call_id, time.time() if now is None else now)

    def _typed(self, claims: dict[str, object], call_id: str, now: float) -> Claims:
        exp, iat = _number(claims, "exp"), _number(claims, "iat")
        nbf = _number(claims, "nbf") if "nbf" in claims else None
        sub, bound, nonce, to = (_string(claims, name) for name in ("sub", "call_id", "nonce", "to"))
        if exp <= now - self._leeway:
            raise AuthRefused("expired")
        if iat > now + self._leeway or (nbf is not None and nbf > now + self._leeway):
            raise AuthRefused("not_yet_valid")
        if exp - iat > self._max_lifetime:
            raise AuthRefused("lifetime_too_long", f"at most {self._max_lifetime:.0f} s from iat to exp")
        if bound != call_id:
            raise AuthRefused("call_id_mismatch")
        if not 8 <= len(nonce) <= 128:
            raise AuthRefused("malformed", "nonce must be a string of 8-128 characters")
        return Claims(sub, call_id, nonce, exp, to)


def _number(claims: dict[str, object], name: str) -> float:
    """A NumericDate: a JSON number, finite (a numeric string or a bool is not one)."""
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthRefused("malformed", f"{name} must be a number")
    return float(value)


def _string(claims: dict[str, object], name: str) -> str:
    value = claims.get(name, "")
    if not isinstance(value, str):
        raise AuthRefused("malformed", f"{name} must be a string")
    return value


def mint(
    key: str, algorithm: str, call_id: str, sub: str, ttl_s: int = 300, to: str = "", now: float | None = None
) -> str:
    """A development token (`tomsip token`); production tokens come from the operator's backend."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "sub": sub,
        "call_id": call_id,
        "iat": issued,
        "exp": issued + ttl_s,
        "nonce": uuid.uuid4().hex,
    }
    if to:
        claims["to"] = to
    return jwt.encode(claims, key, algorithm=algorithm)
