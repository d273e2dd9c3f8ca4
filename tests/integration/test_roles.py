"""Least privilege on the local cluster (flavour postgres: the WASM TimescaleDB accepts any
password and shares one session, so it cannot tell roles apart).

Each role tries what its job never needs and is refused: the owner cannot make roles or read
password hashes, the ingest role cannot alter tables or read the API's token hashes, the grafana
role writes nothing, the notifier cannot write events or touch tokens, the API's role cannot write
events. The existing tests of the pipeline, notifier and API (which now connect as their own
roles) prove the grants are enough. Then the connection: SCRAM over TCP, TLS verified against the
certificate that `ioc dev up` makes, and a clear error for an expired password.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from pydantic import SecretStr

from localdev.runtime import LocalPostgres
from sinks.config import Role
from sinks.connect import connect, connect_problem
from sinks.migrate import migrate
from streams.settings import Settings
from tests.support.database import free_port, scratch_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INCIDENT = "00000000-0000-0000-0000-000000000001"


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


@pytest.fixture(scope="module")
def roles_db(settings: Settings, superuser: str) -> Iterator[str]:
    """A migrated database with one incident, one token and one outbox row to be refused."""
    with scratch_database(superuser, settings.db, "ioc_test_roles") as name:
        with psycopg.connect(settings.db.conninfo("owner", dbname=name), autocommit=True) as conn:
            migrate(conn, settings.db, settings.storage)
            conn.execute(
                "INSERT INTO incidents (id, rule_id, key, state, severity, category, subcategory,"
                " title, description_vi, description_en, opened_at, last_seen) VALUES (%s, 'r',"
                " 'k', 'open', 'high', 'environment', 'air', 't', 'vi', 'en', now(), now())",
                (INCIDENT,),
            )
            conn.execute(
                "INSERT INTO incident_outbox (incident_id, version, kind, payload)"
                " VALUES (%s, 1, 'opened', '{}')",
                (INCIDENT,),
            )
            conn.execute(
                "INSERT INTO api_tokens (id, name, role, hash, created_by)"
                " VALUES ('tok1', 'An', 'admin', 'h', 'test')"
            )
        yield name


REFUSED: dict[Role, list[str]] = {
    "owner": [
        "CREATE ROLE ioc_intruder LOGIN",
        "SELECT rolpassword FROM pg_authid",
        "ALTER SYSTEM SET log_statement = 'none'",
        "COPY (SELECT 1) TO PROGRAM 'true'",
    ],
    "ingest": [
        "ALTER TABLE events ADD COLUMN extra text",
        "ALTER TABLE incidents DROP COLUMN title",
        "DROP TABLE pipeline_stats",
        "TRUNCATE events",
        "CREATE TABLE ingest_own (x int)",
        "SELECT hash FROM api_tokens",
        "SELECT * FROM link_uses",
        "SELECT * FROM notifications",
        "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by)"
        " VALUES (gen_random_uuid(), '{}', now(), now() + interval '1 hour', 'x')",
        "UPDATE incident_outbox SET paged_at = now()",
        "DELETE FROM events",
    ],
    "grafana": [
        "INSERT INTO events (time, id, source, type, domain, entity_id)"
        " VALUES (now(), 'x', 's', 't', 'd', 'e')",
        "UPDATE incidents SET state = 'resolved'",
        "DELETE FROM zones",
        "INSERT INTO pipeline_stats (time, worker, domain) VALUES (now(), 'w', 'd')",
        "CREATE TABLE grafana_own (x int)",
        "SELECT hash FROM api_tokens",
    ],
    "notifier": [
        "INSERT INTO events (time, id, source, type, domain, entity_id)"
        " VALUES (now(), 'x', 's', 't', 'd', 'e')",
        "SELECT * FROM events",
        "SELECT hash FROM api_tokens",
        "UPDATE incidents SET state = 'resolved'",
        "UPDATE incident_outbox SET published_at = now()",
        "UPDATE rule_state SET state = '{}'",
        "DELETE FROM notifications",
        "ALTER TABLE notifications ADD COLUMN extra text",
    ],
    "api": [
        "INSERT INTO events (time, id, source, type, domain, entity_id)"
        " VALUES (now(), 'x', 's', 't', 'd', 'e')",
        "INSERT INTO measurements (time, domain, metric, entity_id, value)"
        " VALUES (now(), 'd', 'm', 'e', 1)",
        "UPDATE events SET data = '{}'",
        "DELETE FROM events",
        "SELECT * FROM events",
        "UPDATE api_tokens SET hash = 'mine', role = 'admin'",
        "UPDATE incidents SET rule_id = 'other'",
        "DELETE FROM incidents",
        "INSERT INTO notifications (id, kind, receiver, secret, subject, body)"
        " VALUES (gen_random_uuid(), 'first', 'r', 's', 's', 'b')",
        "UPDATE incident_outbox SET published_at = now()",
        "ALTER TABLE api_tokens ADD COLUMN extra text",
    ],
}


@pytest.mark.parametrize(
    ("role", "statement"), [(role, s) for role, found in REFUSED.items() for s in found]
)
def test_each_role_is_refused_what_its_job_never_needs(
    settings: Settings, roles_db: str, role: Role, statement: str
) -> None:
    with (
        psycopg.connect(settings.db.conninfo(role, dbname=roles_db), autocommit=True) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_no_role_is_a_superuser_or_makes_roles_or_owns_what_it_should_not(
    settings: Settings, roles_db: str
) -> None:
    with psycopg.connect(settings.db.conninfo("owner", dbname=roles_db)) as conn:
        found = conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles"
            " WHERE rolname = ANY(%s)",
            (settings.db.users(),),
        ).fetchall()
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        ).fetchall()
    assert {r[0] for r in found} == set(settings.db.users())
    assert all(r[1:] == (False, False, False, False) for r in found), found
    assert {r[0] for r in owners} == {settings.db.owner_user}


def test_the_services_can_do_their_job(settings: Settings, roles_db: str) -> None:
    """The few statements the refusals sit next to: a role's job still works (the pipeline,
    notifier and API tests cover the rest through the code)."""

    def run(role: Role, statement: str, *args: object) -> None:
        with psycopg.connect(settings.db.conninfo(role, dbname=roles_db), autocommit=True) as c:
            c.execute(statement, args or None)

    run("notifier", "UPDATE incident_outbox SET paged_at = now() WHERE incident_id = %s", INCIDENT)
    run("ingest", "UPDATE incident_outbox SET published_at = now() WHERE incident_id = %s",
        INCIDENT)  # fmt: skip
    run("api", "UPDATE api_tokens SET last_used_at = now() WHERE id = 'tok1' RETURNING hash")
    run("grafana", "SELECT count(*) FROM incidents")


# -- the connection ---------------------------------------------------------------------------


def test_tcp_logins_use_scram(settings: Settings, superuser: str) -> None:
    with psycopg.connect(superuser, autocommit=True) as conn:
        rules = conn.execute(
            "SELECT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL"
        ).fetchall()
        hashes = conn.execute(
            "SELECT rolname, left(rolpassword, 14) FROM pg_authid WHERE rolname = ANY(%s)",
            (settings.db.users(),),
        ).fetchall()
    assert {method for kind, method in rules if kind.startswith("host")} == {"scram-sha-256"}
    assert {prefix for _, prefix in hashes} == {"SCRAM-SHA-256$"}


def test_tls_is_verified_against_the_local_ca(settings: Settings, pg_conninfo: str) -> None:
    ca = LocalPostgres(settings).ca_file
    assert ca.is_file(), "`ioc dev up` makes the local CA"
    verified = settings.db.model_copy(
        update={"sslmode": "verify-full", "sslrootcert": ca, "host": "localhost"}
    )
    with connect(verified, "ingest") as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)
    by_ip = verified.model_copy(update={"host": "127.0.0.1"})  # the certificate names both
    with connect(by_ip, "api") as conn:
        assert conn.info.pgconn.ssl_in_use


def test_tls_refuses_a_server_it_cannot_verify(settings: Settings, tmp_path: Path,
                                                pg_conninfo: str) -> None:  # fmt: skip
    other = tmp_path / "other-ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=not ours", "-keyout", str(tmp_path / "k"),
         "-out", str(other)],
        check=True, capture_output=True,
    )  # fmt: skip
    strange = settings.db.model_copy(update={"sslmode": "verify-full", "sslrootcert": other})
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        connect(strange, "ingest").close()


def test_an_expired_password_says_so(settings: Settings, superuser: str) -> None:
    user = f"ioc_test_expired_{uuid.uuid4().hex[:6]}"
    password = "expired-" + uuid.uuid4().hex
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} VALID UNTIL '2020-01-01 00:00:00+00'").format(
                sql.Identifier(user), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(settings.db.name), sql.Identifier(user)
            )
        )
    try:
        db = settings.db.model_copy(
            update={"ingest_user": user, "ingest_password": SecretStr(password)}
        )
        with pytest.raises(psycopg.OperationalError) as refused:
            connect(db, "ingest")
        message = str(refused.value)
        assert f"the password of role {user} expired at 2020-01-01" in message
        assert "IOC_DB__INGEST_PASSWORD" in message
        assert password not in message

        wrong = settings.db.model_copy(update={"api_password": SecretStr("not-the-password")})
        try:
            psycopg.connect(wrong.conninfo("api")).close()
        except psycopg.OperationalError as exc:
            said = connect_problem(exc, wrong, "api")
        assert "IOC_DB__API_PASSWORD is wrong or has expired" in said
        assert "not-the-password" not in said

        # The CLI says the same and exits non-zero.
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_DB__INGEST")}
        env |= {"IOC_DB__INGEST_USER": user, "IOC_DB__INGEST_PASSWORD": password}
        done = subprocess.run(
            [sys.executable, "-m", "ioc", "db", "check"], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1
        out = " ".join((done.stdout + done.stderr).split())
        assert f"the password of role {user} expired at" in out
        assert password not in done.stdout + done.stderr

        # A service refuses to start on it, saying why, rather than retrying forever.
        env |= {"IOC_STREAM__WEB_PORT": str(free_port())}
        worker = subprocess.run(
            [sys.executable, "-m", "ioc", "worker"], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert worker.returncode == 1
        said = " ".join(worker.stderr.split())
        assert "cannot start the worker: cannot connect" in said
        assert f"the password of role {user} expired at" in said
    finally:
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(
                sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
                    sql.Identifier(settings.db.name), sql.Identifier(user)
                )
            )
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))
