"""One-tap links: a signed claim bound to one incident, one action and one officer, with an
expiry and a nonce (the link works once: the API records each nonce it has used).

    <public_url>/l/<incident id>/<claims>.<signature>

claims = base64url("<incident>|<action>|<officer>|<expires unix s>|<nonce>"), signature =
base64url(HMAC-SHA256(link_key, claims)). Nothing in a link is secret but the signature's key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ACTIONS = ("ack",)


class LinkError(Exception):
    """Why a link is refused: `reason` is one of bad_link, bad_signature, expired,
    wrong_incident."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    incident: str
    action: str
    officer: str
    expires: datetime
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, incident: str, officer: str, *, now: datetime, ttl: timedelta,
         action: str = "ack") -> str:  # fmt: skip
    """The token part of a link (claims.signature)."""
    if action not in ACTIONS or "|" in officer or "|" in incident:
        raise ValueError("bad action, officer or incident")
    expires = int((now + ttl).timestamp())
    claims = _b64(f"{incident}|{action}|{officer}|{expires}|{secrets.token_urlsafe(12)}".encode())
    return f"{claims}.{_b64(hmac.new(key, claims.encode(), hashlib.sha256).digest())}"


def link(base_url: str, key: bytes, incident: str, officer: str, *, now: datetime,
         ttl: timedelta) -> str:  # fmt: skip
    return f"{base_url}/l/{incident}/{sign(key, incident, officer, now=now, ttl=ttl)}"


def verify(key: bytes, incident: str, token: str, *, now: datetime | None = None) -> Claims:
    """The link's claims if its signature holds, it has not expired and it is for `incident`;
    raises LinkError otherwise. (That it was not used before is the API's to check.)"""
    claims_text, dot, signature = token.partition(".")
    if not dot or not claims_text or not signature:
        raise LinkError("bad_link", "this link is not well formed")
    expected = _b64(hmac.new(key, claims_text.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        raise LinkError("bad_signature", "this link's signature does not match")
    try:
        bound, action, officer, expires, nonce = _unb64(claims_text).decode().split("|")
        until = datetime.fromtimestamp(int(expires), UTC)
    except (ValueError, UnicodeDecodeError):
        raise LinkError("bad_link", "this link is not well formed") from None
    if bound != incident:
        raise LinkError("wrong_incident", "this link is for another incident")
    if (now or datetime.now(UTC)) >= until:
        raise LinkError("expired", "this link has expired")
    return Claims(bound, action, officer, until, nonce)
