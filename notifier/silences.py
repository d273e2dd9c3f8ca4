"""Silences and maintenance windows: time-bounded matchers that mute matching incidents' pages.

A silence that starts later is a maintenance window. The notifier applies them when a group is
flushed: a muted incident gets a `silenced` row in its history, and an `unmuted` row when the
silence ends (expires, or a person expires it early); its group is looked at again then.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from paging.model import RouteMatch


class SilenceError(Exception):
    """A silence that cannot be made or expired; says why."""


def add_silence(conn: psycopg.Connection[Any], matchers: RouteMatch, starts: datetime,
                ends: datetime, by: str, comment: str) -> dict[str, Any]:  # fmt: skip
    if matchers.everything:
        raise SilenceError("a silence needs at least one matcher (zone, domain, severity, rule)")
    if starts.tzinfo is None or ends.tzinfo is None:
        raise SilenceError("start and end need a time zone")
    if ends <= starts:
        raise SilenceError("the silence must end after it starts")
    if not by.strip():
        raise SilenceError("who sets the silence must be given")
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
            (uuid.uuid4(), Jsonb(matchers.model_dump(exclude_none=True)), starts, ends, by, comment),
        ).fetchone()  # fmt: skip
        assert row is not None
        # the groups it matches are looked at again when it starts
        cur.execute("UPDATE page_groups SET next_flush_at = least(next_flush_at, %s) "
                    "WHERE state = 'active'", (starts,))  # fmt: skip
        return dict(row)


def list_silences(
    conn: psycopg.Connection[Any], include_expired: bool = False
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT *, now() >= ends_at AS expired, now() < starts_at AS pending FROM silences "
            "WHERE %s OR ends_at > now() ORDER BY starts_at, id", (include_expired,),
        ).fetchall()  # fmt: skip


def expire_silence(conn: psycopg.Connection[Any], silence_id: str, by: str) -> dict[str, Any]:
    try:
        silence_id = str(uuid.UUID(silence_id))
    except ValueError:
        raise SilenceError(f"{silence_id!r} is not a silence id (a UUID)") from None
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE silences SET ends_at = greatest(now(), starts_at + interval '1 microsecond'), "
            "expired_by = %s WHERE id = %s AND ends_at > now() RETURNING *", (by, silence_id),
        ).fetchone()  # fmt: skip
        if row is None:
            raise SilenceError(f"no silence {silence_id} in force or pending")
        cur.execute(
            "UPDATE page_groups SET next_flush_at = now() WHERE state = 'active' AND id IN "
            "(SELECT group_id FROM page_members WHERE muted_by = %s)", (f"silence:{silence_id}",),
        )  # fmt: skip
        return dict(row)
