"""No secret anywhere it should not be.

A recognisable value is planted in every secret setting: the five database roles' passwords
(roles made for this test, so the value really is the password), the Kafka principal's password
(carried and masked; the broker here is PLAINTEXT, tests/secure/ runs SASL), every paging secret
(apprise URLs with a password in them), the API's token_key and link_key, Grafana's password and
token. Then the demo's path runs in-process on the real
components: the pipeline (rules, incidents, outbox, a poison record to the DLQ, its stats), the
notifier (pages to a webhook with basic auth, and to targets that cannot be reached), the API
(tokens, actions, one-tap links and every error path, the database refusing connections), a
failing connection, and `ioc config show` / `ioc db check` as a person would run them. Then
the value is searched for in the logs, the command output, the error messages, the DLQ's
headers, every row of the database (pipeline_stats, notifications' bodies and errors, ...), the
webhook requests' bodies and the API's responses, and must not be there. The API token's own
secret is searched for too: it is shown once, by whoever creates it, and never again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from access.links import link
from api.store import create_token
from localdev.runtime import LocalPostgres
from notifier.core import Context, Links
from notifier.service import Notifier
from paging.load import parse_paging
from rules import load_rule_files
from sinks.config import ROLES
from sinks.connect import connect
from streams.settings import Settings
from tests.integration.test_paging import paging_yaml, reading, rules
from tests.support.api_server import api_server
from tests.support.database import free_port
from tests.support.harness import pipeline_harness
from tests.support.paging import WebhookServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MARK = f"PlantedSecret{uuid.uuid4().hex[:10]}"  # every planted value starts with it


def planted(name: str) -> str:
    return f"{MARK}-{name}"


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


@pytest.fixture(scope="module")
def leak_settings(settings: Settings, superuser: str) -> Iterator[Settings]:
    """Settings whose every secret is planted; the database roles are made for this test, with
    the planted passwords (sent to the server as SCRAM verifiers, never in clear)."""
    suffix = uuid.uuid4().hex[:6]
    users = {role: f"ioc_leak_{role}_{suffix}" for role in ROLES}
    with psycopg.connect(superuser, autocommit=True) as conn:
        for role, user in users.items():
            verifier = conn.pgconn.encrypt_password(
                planted(f"db-{role}").encode(), user.encode(), b"scram-sha-256"
            )
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(verifier.decode())
                )
            )
    update: dict[str, Any] = {}
    for role, user in users.items():
        update[f"{role}_user"] = user
        update[f"{role}_password"] = SecretStr(planted(f"db-{role}"))
    api = settings.api.model_copy(
        update={
            "token_key": SecretStr(planted("token-key")),
            "link_key": SecretStr(planted("link-key")),
            "public_url": "http://127.0.0.1:9",
        }
    )
    grafana = settings.grafana.model_copy(
        update={"password": SecretStr(planted("grafana-password")),
                "token": SecretStr(planted("grafana-token"))}
    )  # fmt: skip
    try:
        # the Kafka principal's password too (the broker here is PLAINTEXT: it is masked and
        # carried, never sent; tests/secure/ runs the clients with SASL)
        kafka = settings.kafka.model_copy(
            update={"username": "ioc-worker", "password": SecretStr(planted("kafka"))}
        )
        yield settings.model_copy(
            update={"db": settings.db.model_copy(update=update), "api": api, "grafana": grafana,
                    "kafka": kafka}
        )  # fmt: skip
    finally:
        with psycopg.connect(superuser, autocommit=True) as conn:
            for user in users.values():
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))


def planted_env(settings: Settings) -> dict[str, str]:
    """The planted secrets as the environment a deployment would set."""
    env = {f"IOC_DB__{role.upper()}_PASSWORD": planted(f"db-{role}") for role in ROLES}
    env |= {f"IOC_DB__{role.upper()}_USER": settings.db.user(role) for role in ROLES}
    env |= {
        "IOC_API__TOKEN_KEY": planted("token-key"),
        "IOC_API__LINK_KEY": planted("link-key"),
        "IOC_GRAFANA__PASSWORD": planted("grafana-password"),
        "IOC_GRAFANA__TOKEN": planted("grafana-token"),
        "IOC_KAFKA__USERNAME": "ioc-worker",
        "IOC_KAFKA__PASSWORD": planted("kafka"),
        "IOC_PAGING__SECRETS__CENTER": f"json://ioc:{planted('center')}@127.0.0.1:9/c",
    }
    return env


def database_text(conninfo: str) -> str:
    """Every row of every table and view in the schema, as JSON text."""
    out = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')"
                " AND NOT c.relispartition"
            )
        ]
        for name in names:
            rows = conn.execute(
                sql.SQL("SELECT row_to_json(t)::text FROM {} t").format(sql.Identifier(name))
            ).fetchall()
            out.extend(f"{name}: {r[0]}" for r in rows)
    return "\n".join(out)


def run_cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ioc", *args], cwd=ROOT, env=os.environ | env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return f"$ ioc {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


async def test_no_planted_secret_appears_anywhere(
    leak_settings: Settings, superuser: str, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    seen: dict[str, str] = {}  # where -> what was there
    now = datetime.now(UTC) - timedelta(seconds=5)
    async with pipeline_harness(leak_settings, superuser, rules=rules(compound=True)) as h:
        with WebhookServer() as hook:
            # -- the pipeline: incidents, a poison record, the stats -----------------------------
            await h.handle("environment", [reading(h, "a", 60, entity="st-1", t=now, no2=250)])
            await h.handle("environment", [h.record(b"{not json", [("ce_id", b"x")])])
            h.pipeline.write_stats()
            assert h.incidents() and h.dead.letters
            seen["dlq"] = "\n".join(
                repr(letter.kafka_headers()) + repr(letter) for letter in h.dead.letters
            )

            # -- the notifier: a webhook with basic auth; targets that cannot be reached ---------
            port = hook.port
            secrets = {
                "center": f"json://ioc:{planted('center')}@127.0.0.1:{port}/center",
                "hook": f"json://ioc:{planted('hook')}@127.0.0.1:{port}/hook",
                "an": f"mailto://ioc:{planted('an')}@127.0.0.1:{free_port()}"
                "?to=an@ioc.test&from=ioc@ioc.test&mode=insecure",
                "binh": f"json://ioc:{planted('binh')}@127.0.0.1:{free_port()}/binh",
                "chi": f"json://{planted('chi')}@127.0.0.1:{free_port()}/chi",
            }
            paging = h.settings.paging.model_copy(
                update={
                    "secrets": {k: SecretStr(v) for k, v in secrets.items()},
                    "poll_interval_s": 0.05, "retry_first_s": 0.1, "retry_cap_s": 0.2,
                }
            )  # fmt: skip
            text = paging_yaml(wait="0s", steps="      - notify: duty_officer")
            api = h.settings.api
            links = Links(api.public_url or "", planted("link-key").encode(), timedelta(hours=1))
            ctx = Context(parse_paging(text, "leak-paging.yaml"), paging,
                          load_rule_files([("r.yaml", h.rules or "")]), links)  # fmt: skip
            running = Notifier(h.settings.model_copy(update={"paging": paging}), ctx)
            task = asyncio.create_task(running.run())
            try:
                for _ in range(200):
                    failed = (
                        h.owner()
                        .execute("SELECT count(*) FROM notifications WHERE last_error IS NOT NULL")
                        .fetchone()
                    )
                    if len(hook.hooks) >= 2 and failed and failed[0] >= 1:
                        break
                    await asyncio.sleep(0.05)
            finally:
                running.stop()
                await asyncio.wait_for(task, 10)
            assert len(hook.hooks) >= 2, "the webhook got the pages"
            assert failed and failed[0] >= 1, "a page to an unreachable target failed"
            seen["webhook bodies"] = "\n".join(x.body.decode(errors="replace") for x in hook.hooks)
            # the secret was used where it belongs: the webhook's basic auth
            basic = base64.b64encode(f"ioc:{planted('center')}".encode()).decode()
            assert any(x.headers.get("Authorization") == f"Basic {basic}" for x in hook.hooks)

        # -- the API: tokens, actions, links and its error paths -------------------------------
        with connect(h.settings.db, "api") as conn:
            token = create_token(conn, planted("token-key").encode(), "An", "admin", "test")
        incident = str(h.incidents()[0]["id"])
        signed = link("", planted("link-key").encode(), incident, "an",
                      now=datetime.now(UTC), ttl=timedelta(hours=1))  # fmt: skip
        responses = []
        with api_server(h.settings, rules(compound=True)) as base:
            auth = {"Authorization": f"Bearer {token.token}"}
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                calls = [
                    ("GET", "/incidents", auth, None),
                    ("GET", f"/incidents/{incident}", auth, None),
                    ("POST", f"/incidents/{incident}/comments", auth, {"text": "on it"}),
                    ("GET", "/incidents", {}, None),  # 401
                    ("GET", "/incidents", {"Authorization": "Bearer ioc_nope_nope"}, None),
                    ("GET", "/incidents", {"Authorization": f"Bearer {token.token}x"}, None),
                    ("GET", "/incidents/not-a-uuid", auth, None),  # 404
                    ("POST", f"/incidents/{incident}/comments", auth, {"nope": 1}),  # 422
                    ("POST", f"/incidents/{incident}/comments", auth, {"text": "x" * 20000}),
                    ("GET", signed, {}, None),  # the link's page
                    ("GET", signed + "tampered", {}, None),
                    ("POST", signed, {}, None),  # acknowledges
                    ("POST", signed, {}, None),  # used: refused
                    ("POST", f"/incidents/{incident}/ack", auth, None),  # 409: not open
                ]
                for method, path, headers, body in calls:
                    answer = await client.request(method, path, headers=headers, json=body)
                    responses.append(f"{method} {path} -> {answer.status_code} "
                                     f"{dict(answer.headers)} {answer.text}")  # fmt: skip
                with h.database_refusing_connections():  # 503, and the pool's complaints
                    answer = await client.get("/incidents", headers=auth)
                    responses.append(f"outage -> {answer.status_code} {answer.text}")
                    answer = await client.get("/healthz")
                    responses.append(f"outage healthz -> {answer.status_code} {answer.text}")
        statuses = [int(r.split(" -> ")[1].split()[0]) for r in responses]
        assert statuses[:3] == [200, 200, 201] and statuses[-2] == 503, responses
        assert {401, 404, 409, 413, 422} <= set(statuses), responses
        seen["api responses"] = "\n".join(responses)

        # -- failing connections ---------------------------------------------------------------
        errors = []
        wrong = h.settings.db.model_copy(update={"api_password": SecretStr(planted("wrong"))})
        closed = h.settings.db.model_copy(update={"port": free_port()})
        for db, role in ((wrong, "api"), (closed, "ingest")):
            try:
                connect(db, role).close()
            except psycopg.OperationalError as exc:
                errors.append(str(exc))
        assert len(errors) == 2
        seen["connection errors"] = "\n".join(errors)
        seen["database"] = database_text(h.settings.db.conninfo("owner"))

    # -- the commands a person runs ------------------------------------------------------------
    env = planted_env(leak_settings)
    seen["ioc config show"] = run_cli("config", "show", env=env) + run_cli(
        "config", "show", "--json", env=env
    )
    assert leak_settings.db.owner_user in seen["ioc config show"]  # it ran with the planted env
    assert "**********" in seen["ioc config show"]
    seen["ioc db check"] = run_cli("db", "check", env=env)
    assert "db check -> 1" in seen["ioc db check"]  # the leak roles have no CONNECT on `ioc`

    server_log = LocalPostgres(leak_settings).log_file
    seen["postgres's log"] = server_log.read_text(errors="replace")[-2_000_000:]
    captured = capfd.readouterr()
    seen["logs"] = captured.out + captured.err + caplog.text
    assert seen["logs"], "the run logged something"

    leaks = {where: text for where, text in seen.items() if MARK in text}
    assert not leaks, "planted secrets found in: " + json.dumps(
        {w: [line for line in t.splitlines() if MARK in line][:3] for w, t in leaks.items()},
        ensure_ascii=False, indent=1,
    )  # fmt: skip
    secret = token.token.rsplit("_", 1)[1]
    found = [where for where, text in seen.items() if secret in text]
    assert found == [], f"the API token's secret is in {found}"
