"""The operator's bearer token (TOMSIP_ADMIN_TOKEN), checked in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Mapping


def admin_allowed(admin: bytes | None, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """True with no token configured (the route decides whether that is allowed), or when the request
    offers it as `Authorization: Bearer` or, for a page's first load, `?token=`."""
    if admin is None:
        return True
    auth = headers.get("Authorization", "")
    offered = auth[7:].strip() if auth.lower().startswith("bearer ") else query.get("token", "")
    return hmac.compare_digest(offered.encode(), admin)
