"""Why a role could not connect, said so that the operator knows what to change.

PostgreSQL answers a wrong password and an expired one (`VALID UNTIL` in the past) alike, with
"password authentication failed", and writes the difference only to its own log. When that
happens to a service role, `connect_problem` asks the owner role (which may read `pg_roles`)
whether the role's password has expired, and says so with the setting to change. No message
carries a password: libpq's errors never include it, and nothing here formats one in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from sinks.config import DatabaseSettings, Role

AUTH_FAILED = "password authentication failed"
# What a login refused for good says (a server that is down or starting is not among them).
REFUSED_LOGIN = (AUTH_FAILED, "does not exist", "is not permitted to log in",
                 "permission denied for database", "no pg_hba.conf entry")  # fmt: skip


def password_setting(role: Role) -> str:
    return f"IOC_DB__{role.upper()}_PASSWORD"


def password_expiry(db: DatabaseSettings, role: Role) -> datetime | None:
    """The role's VALID UNTIL, read as the owner; None if unlimited or the owner cannot tell."""
    if role == "owner":
        return None
    try:
        with psycopg.connect(db.conninfo("owner"), autocommit=True) as conn:
            row = conn.execute(
                "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", (db.user(role),)
            ).fetchone()
    except psycopg.Error:
        return None
    found = row[0] if row else None
    return found if isinstance(found, datetime) else None


def connect_problem(exc: psycopg.OperationalError, db: DatabaseSettings, role: Role) -> str:
    """One line: who could not connect where, and why (an expired password named as such)."""
    user = db.user(role)
    where = f"PostgreSQL at {db.host}:{db.port}, database {db.name}, as {user}"
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if AUTH_FAILED in str(exc):
        expiry = password_expiry(db, role)
        if expiry is not None and expiry <= datetime.now(UTC):
            return (
                f"cannot connect to {where}: the password of role {user} expired at "
                f"{expiry.isoformat()} (VALID UNTIL); set a new one (ALTER ROLE {user} PASSWORD "
                f"... VALID UNTIL ...) and give it in {password_setting(role)}"
            )
        return (
            f"cannot connect to {where}: {text}; the password in {password_setting(role)} is "
            "wrong or has expired (VALID UNTIL; PostgreSQL's log says which)"
        )
    return f"cannot connect to {where}: {text}"


def connect(db: DatabaseSettings, role: Role, **kwargs: Any) -> psycopg.Connection[Any]:
    """psycopg.connect as `role`; a failure raises OperationalError with `connect_problem`'s text."""
    try:
        return psycopg.connect(db.conninfo(role), **kwargs)
    except psycopg.OperationalError as exc:
        raise psycopg.OperationalError(connect_problem(exc, db, role)) from None


def refused_logins(db: DatabaseSettings, roles: tuple[Role, ...]) -> list[str]:
    """Log in once as each role; the problems of those the server refused for good.

    For a service's start: a wrong or expired password, or a missing role, stops it at once with
    the reason, instead of retrying forever. A server that cannot be reached is not a refusal:
    the services wait for the database.
    """
    problems = []
    for role in roles:
        try:
            psycopg.connect(db.conninfo(role)).close()
        except psycopg.OperationalError as exc:
            if any(marker in str(exc) for marker in REFUSED_LOGIN):
                problems.append(connect_problem(exc, db, role))
    return problems
