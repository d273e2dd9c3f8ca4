"""The API's reads and writes: tokens, incidents with their history. psycopg, no HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from access.tokens import ROLES, NewToken, new_token


class TokenError(Exception):
    """A token cannot be made or revoked; says why."""


def create_token(conn: psycopg.Connection[Any], key: bytes, name: str, role: str,
                 by: str) -> NewToken:  # fmt: skip
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)} (got {role!r})")
    if not name.strip():
        raise TokenError("the token's person (--name) must be given")
    made = new_token(key)
    with conn.transaction():
        conn.execute(
            "INSERT INTO api_tokens (id, name, role, hash, created_by) VALUES (%s, %s, %s, %s, %s)",
            (made.id, name, role, made.hash, by),
        )
    return made


def list_tokens(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, name, role, created_at, created_by, last_used_at, revoked_at "
            "FROM api_tokens ORDER BY created_at"
        ).fetchall()


def revoke_token(conn: psycopg.Connection[Any], token_id: str) -> None:
    with conn.transaction():
        cur = conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
            (token_id,),
        )
        if cur.rowcount != 1:
            raise TokenError(f"no live token {token_id}")


def token_row(conn: psycopg.Connection[Any], token_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = %s AND revoked_at IS NULL "
            "RETURNING id, name, role, hash",
            (token_id,),
        ).fetchone()


def incidents(conn: psycopg.Connection[Any], *, state: str | None, severity: str | None,
              zone: str | None, rules: Sequence[str] | None, limit: int) -> list[dict[str, Any]]:  # fmt: skip
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM incidents WHERE (%(state)s::text IS NULL OR state = %(state)s) "
            "AND (%(severity)s::text IS NULL OR severity = %(severity)s) "
            "AND (%(zone)s::text IS NULL OR zone_id = %(zone)s) "
            "AND (%(rules)s::text[] IS NULL OR rule_id = ANY(%(rules)s)) "
            "ORDER BY opened_at DESC, id LIMIT %(limit)s",
            {"state": state, "severity": severity, "zone": zone,
             "rules": list(rules) if rules is not None else None, "limit": limit},
        ).fetchall()  # fmt: skip


def incident(conn: psycopg.Connection[Any], incident_id: str) -> dict[str, Any] | None:
    try:
        key = uuid.UUID(incident_id)
    except ValueError:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM incidents WHERE id = %s", (key,)).fetchone()


def zone_name(conn: psycopg.Connection[Any], zone_id: str) -> str | None:
    row = conn.execute("SELECT name FROM zones WHERE id = %s", (zone_id,)).fetchone()
    return row[0] if row else None


def history(conn: psycopg.Connection[Any], incident_id: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT at, kind, actor, channel, detail, version FROM incident_events "
            "WHERE incident_id = %s ORDER BY id",
            (incident_id,),
        ).fetchall()


def use_link(conn: psycopg.Connection[Any], nonce: str, incident_id: str, officer: str,
             action: str) -> bool:  # fmt: skip
    """Record a link's use in the caller's transaction; False if it was used before."""
    cur = conn.execute(
        "INSERT INTO link_uses (nonce, incident_id, officer, action) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        (nonce, incident_id, officer, action),
    )
    return cur.rowcount == 1


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
