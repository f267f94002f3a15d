"""Browser tokens: JWT verification with an algorithm allow-list, and minting for development.

A browser proves who it is with a JWT it got from the operator's own backend (or `tomsip token` in
development): HS256 with a shared secret, or RS256/ES256 signed by a private key whose public half
tomsip holds. The claims must include sub, call_id (equal to the conversation the URL names), iat,
exp and nonce. Verification is pure and synchronous; the one-time use of the nonce is the caller's
job (the store, shared by every node), because it needs I/O.

Every refusal has one specific reason, used for the HTTP 401 body, the close reason and the
`tomsip_auth_failures_total{reason}` metric. The token itself never appears in a log or an error.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

REQUIRED_CLAIMS = ("sub", "call_id", "iat", "exp", "nonce")
MAX_TOKEN_BYTES = 4096


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
    def __init__(self, key: str, algorithms: list[str], leeway_s: float = 10.0) -> None:
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ValueError("an algorithm allow-list is required, and it may never include none")
        self._key = key
        self._algorithms = list(algorithms)
        self._leeway = leeway_s

    def verify(self, token: str | None, call_id: str) -> Claims:
        if not token:
            raise AuthRefused("no_token")
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthRefused("malformed", "token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthRefused("malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthRefused("alg_not_allowed", str(alg)[:20])
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthRefused("expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthRefused("not_yet_valid") from None
        except jwt.InvalidSignatureError:
            raise AuthRefused("bad_signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthRefused("missing_claim", exc.claim) from None
        except jwt.InvalidIssuedAtError:
            raise AuthRefused("not_yet_valid", "iat in the future") from None
        except (jwt.InvalidKeyError, jwt.InvalidAlgorithmError):
            raise AuthRefused("alg_not_allowed") from None
        except jwt.InvalidTokenError:
            raise AuthRefused("malformed") from None
        if claims["call_id"] != call_id:
            raise AuthRefused("call_id_mismatch")
        nonce = claims["nonce"]
        if not isinstance(nonce, str) or not 8 <= len(nonce) <= 128:
            raise AuthRefused("malformed", "nonce must be a string of 8-128 characters")
        return Claims(str(claims["sub"]), call_id, nonce, float(claims["exp"]), str(claims.get("to") or ""))


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
