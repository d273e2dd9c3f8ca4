"""Real databases for tests and benchmarks: a throwaway PostgreSQL database, and a throwaway
TimescaleDB (the WASM build from npm, served over the wire by deploy/local/pglite/server.mjs).

Nothing here is imported by the running platform.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sinks.config import DatabaseSettings
from sinks.rows import Batch, EventRow, MeasurementRow
from streams.net import free_port as free_port  # the tests and benches import it from here

PGLITE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "local" / "pglite"
PGLITE_INSTALL = f"cd {PGLITE_DIR} && npm ci --legacy-peer-deps"


class DatabaseUnavailable(Exception):
    """A test database cannot be made; the message says what to run."""


@contextlib.contextmanager
def scratch_database(
    superuser_conninfo: str, db: DatabaseSettings, prefix: str = "ioc_test"
) -> Iterator[str]:
    """Create an empty database owned by the owner role (connect granted to the other roles),
    yield its name, drop it afterwards (connections forced off)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(superuser_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(db.owner_user)
            )
        )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(name),
                sql.SQL(", ").join(sql.Identifier(u) for u in db.users()[1:]),
            )
        )
    try:
        yield name
    finally:
        with psycopg.connect(superuser_conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def one_event_each(measurements: Iterable[MeasurementRow]) -> Batch:
    """A batch where every measurement comes with an event of its own (id from its entity,
    metric and time), for tests that think in measurements."""
    batch = Batch()
    for m in measurements:
        event = EventRow(
            f"{m.entity_id}/{m.metric}/{m.time.isoformat()}", m.time, f"urn:test:{m.entity_id}",
            f"test.{m.domain}.{m.metric}", m.domain, m.entity_id, m.zone_id, None, None, None, "{}",
        )  # fmt: skip
        batch.add_event(event, (m,))
    return batch


class PGliteServer:
    """A fresh, in-memory TimescaleDB (PostgreSQL 17 + TimescaleDB 2.23, WASM) on 127.0.0.1.

    All connections share ONE backend session: use one connection at a time, no COPY FROM STDIN.
    The user is `postgres` (superuser); any password is accepted but one must be sent.
    """

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def conninfo(self, dbname: str = "postgres") -> str:
        return make_conninfo(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password="pglite",  # any value; the server only wants one
            dbname=dbname,
            sslmode="disable",
            connect_timeout=10,
        )

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[tuple[Any, ...]]:
        """A connection with prepared statements off: every connection shares one session,
        so psycopg's automatic statement names (_pg3_0 ...) would collide."""
        return psycopg.connect(self.conninfo(), autocommit=autocommit, prepare_threshold=None)

    def start(self, timeout: float = 90.0) -> PGliteServer:
        node = shutil.which("node")
        if not node:
            raise DatabaseUnavailable("node is not on PATH; install Node.js 20")
        if not (PGLITE_DIR / "node_modules" / "@electric-sql" / "pglite-socket").is_dir():
            raise DatabaseUnavailable(
                f"the PGlite packages are not installed; run: {PGLITE_INSTALL}"
            )
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [node, "server.mjs", "--port", str(self.port)],
                cwd=PGLITE_DIR, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DatabaseUnavailable(
                    f"the PGlite server exited with code {self.proc.returncode} while starting"
                )
            try:
                with psycopg.connect(self.conninfo(), autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.3)
        self.stop()
        raise DatabaseUnavailable(f"the PGlite server did not answer within {timeout:.0f}s: {last}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> PGliteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_roles(conn: psycopg.Connection[Any], db: DatabaseSettings) -> None:
    """The platform's roles, without login (for the PGlite instance, where the session user
    is always `postgres`; grants are still made and checked)."""
    with conn:
        for user in db.users():
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(user)))


@contextlib.contextmanager
def migrated_timescale(
    db: DatabaseSettings, storage: Any, log_file: Path
) -> Iterator[PGliteServer]:
    """A fresh WASM TimescaleDB with the roles and every migration of flavour timescale; a
    test that cannot start it fails with the command that installs it (never skips)."""
    import pytest

    from sinks.migrate import migrate

    log_file.parent.mkdir(parents=True, exist_ok=True)
    server = PGliteServer(log_file=log_file)
    try:
        server.start()
    except DatabaseUnavailable as exc:
        pytest.fail(f"{exc} (install: {PGLITE_INSTALL})", pytrace=False)
    try:
        create_roles(server.connect(), db)
        with server.connect() as conn:
            migrate(conn, db, storage, flavour="timescale")
        yield server
    finally:
        server.stop()
