"""API tokens: `ioc_<id>_<secret>`. The id finds the row; the secret is stored only as
HMAC-SHA256(token_key, secret) and compared in constant time. The token is shown once."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

ROLES = ("viewer", "officer", "admin")
_TOKEN = re.compile(r"^ioc_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewToken:
    id: str
    token: str  # give it to the person once; it is not stored
    hash: str


def digest(key: bytes, secret: str) -> str:
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def new_token(key: bytes) -> NewToken:
    token_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return NewToken(token_id, f"ioc_{token_id}_{secret}", digest(key, secret))


def split(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    found = _TOKEN.match(token)
    return (found.group(1), found.group(2)) if found else None


def matches(key: bytes, secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(digest(key, secret), stored_hash)


def allows(role: str, needed: str) -> bool:
    """Roles are ordered: an admin may do what an officer may, an officer what a viewer may."""
    return ROLES.index(role) >= ROLES.index(needed)
