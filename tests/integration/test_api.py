"""The incident API on a real uvicorn server and the real database, called with httpx (a client
we did not write): roles, hardening, the one-tap link, tokens at rest, the committed OpenAPI."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr

from access.config import ApiSettings
from access.links import sign
from api.store import create_token
from ioc.api_commands import OPENAPI, openapi_document
from localdev.runtime import LocalPostgres
from streams.settings import Settings
from tests.integration.test_paging import reading, rules
from tests.support.api_server import api_server
from tests.support.harness import Harness, pipeline_harness

pytestmark = pytest.mark.integration

TOKEN_KEY = b"test-token-key-0123456789"
LINK_KEY = b"test-link-key-0123456789"


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


def api_settings(h: Harness, **changes: Any) -> Settings:
    api = ApiSettings(
        token_key=SecretStr(TOKEN_KEY.decode()), link_key=SecretStr(LINK_KEY.decode()),
        public_url="http://127.0.0.1:1", max_body_bytes=2048, **changes,
    )  # fmt: skip
    return h.settings.model_copy(update={"api": api})


@pytest.fixture
async def h(settings: Settings, superuser: str) -> AsyncIterator[Harness]:
    async with pipeline_harness(settings, superuser, rules=rules()) as harness:
        now = datetime.now(UTC) - timedelta(minutes=1)
        await harness.handle("environment", [
            reading(harness, f"e{n}", 60, entity=f"st-{n}", t=now) for n in range(3)
        ])  # fmt: skip
        yield harness


def tokens(h: Harness) -> dict[str, str]:
    with h.owner() as conn:
        return {role: create_token(conn, TOKEN_KEY, f"{role}-lan", role, "test").token
                for role in ("viewer", "officer", "admin")}  # fmt: skip


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def history(h: Harness, incident_id: Any) -> list[dict[str, Any]]:
    with h.owner() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT kind, actor, channel, detail FROM incident_events "
                           "WHERE incident_id = %s ORDER BY id", (incident_id,)).fetchall()  # fmt: skip


def test_roles_tokens_and_errors(h: Harness, caplog: pytest.LogCaptureFixture,
                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    issued = tokens(h)
    first = str(h.incidents()[0]["id"])
    with api_server(api_settings(h), rules()) as base, httpx.Client(base_url=base) as client:
        assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}

        listed = client.get("/incidents", params={"state": "open", "domain": "environment"},
                            headers=auth(issued["viewer"]))  # fmt: skip
        assert listed.status_code == 200 and len(listed.json()) == 3
        assert client.get("/incidents", params={"domain": "health"},
                          headers=auth(issued["viewer"])).json() == []  # fmt: skip

        refused = client.post(f"/incidents/{first}/ack", headers=auth(issued["viewer"]))
        assert refused.status_code == 403
        assert refused.json() == {"error": {"status": 403, "code": "forbidden",
                                            "message": "this needs the officer role; the token is viewer"}}  # fmt: skip

        done = client.post(f"/incidents/{first}/ack", json={"note": "on my way"},
                           headers=auth(issued["officer"]))  # fmt: skip
        assert done.status_code == 200 and done.json()["state"] == "acknowledged"
        assert done.json()["acknowledged_by"] == "officer-lan"
        (row,) = [r for r in history(h, first) if r["kind"] == "acknowledged"]
        assert (row["actor"], row["channel"], row["detail"]) == ("officer-lan", "api",
                                                                 {"note": "on my way"})  # fmt: skip
        again = client.post(f"/incidents/{first}/ack", headers=auth(issued["officer"]))
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

        comment = client.post(f"/incidents/{first}/comments", json={"text": "pump started"},
                              headers=auth(issued["officer"]))  # fmt: skip
        assert comment.status_code == 201
        shown = client.get(f"/incidents/{first}", headers=auth(issued["viewer"])).json()
        assert [e["kind"] for e in shown["history"]][-2:] == ["acknowledged", "comment"]
        assert client.get("/incidents/nope", headers=auth(issued["viewer"])).status_code == 404

        for bad in ("", "Bearer nonsense", f"Bearer {issued['officer'][:-2]}xx",
                    f"Basic {issued['officer']}"):  # fmt: skip
            answer = client.get("/incidents", headers={"Authorization": bad} if bad else {})
            assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
            assert answer.json()["error"]["code"] == "unauthorized"

        big = client.post(f"/incidents/{first}/comments", headers=auth(issued["officer"]),
                          content=json.dumps({"text": "x" * 5000}))  # fmt: skip
        assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"
        streamed = client.post(f"/incidents/{first}/comments", headers=auth(issued["officer"]),
                               content=iter([b'{"text": "', b"y" * 3000, b'"}']))  # fmt: skip
        assert streamed.status_code == 413  # no Content-Length: counted as it arrives

        bad_json = client.post(f"/incidents/{first}/comments", headers=auth(issued["officer"]),
                               json={"text": ""})  # fmt: skip
        assert bad_json.status_code == 422 and "text" in bad_json.json()["error"]["message"]

        # silences: an admin's; an officer may not
        body = {"zone": ["66001"], "duration": "1h", "comment": "works"}
        assert (
            client.post("/silences", json=body, headers=auth(issued["officer"])).status_code == 403
        )
        made = client.post("/silences", json=body, headers=auth(issued["admin"]))
        assert made.status_code == 201 and made.json()["state"] == "active"
        assert made.json()["created_by"] == "admin-lan"
        assert len(client.get("/silences", headers=auth(issued["viewer"])).json()) == 1
        gone = client.delete(f"/silences/{made.json()['id']}", headers=auth(issued["admin"]))
        assert gone.status_code == 200
        assert client.get("/silences", headers=auth(issued["viewer"])).json() == []
        assert client.post("/silences", json={"duration": "1h"},
                           headers=auth(issued["admin"])).status_code == 422  # fmt: skip

        # CORS is closed: a browser on another origin gets no permission
        preflight = client.options("/incidents", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})  # fmt: skip
        assert "access-control-allow-origin" not in preflight.headers

    # tokens are stored as keyed hashes; no token is in any log line or output
    with h.owner() as conn:
        stored = conn.execute("SELECT id, name, role, hash FROM api_tokens").fetchall()
    for token in issued.values():
        secret = token.split("_", 2)[2]
        assert all(token not in str(row) and secret not in str(row) for row in stored)
    printed = capsys.readouterr()
    logged = caplog.text + printed.out + printed.err
    assert "api.request" in logged and "route=/incidents/{incident_id}/ack" in logged
    for token in issued.values():
        assert token not in logged and token.split("_", 2)[2] not in logged


def test_the_rate_limit_is_per_token(h: Harness) -> None:
    issued = tokens(h)
    settings = api_settings(h, rate_per_minute=5)
    with api_server(settings, rules()) as base, httpx.Client(base_url=base) as client:
        codes = [client.get("/incidents", headers=auth(issued["viewer"])).status_code
                 for _ in range(7)]  # fmt: skip
        assert codes == [200] * 5 + [429, 429]
        limited = client.get("/incidents", headers=auth(issued["viewer"]))
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        # another person's token is not held back
        assert client.get("/incidents", headers=auth(issued["officer"])).status_code == 200


def test_a_link_shows_a_page_on_get_and_acknowledges_once_on_post(h: Harness) -> None:
    first, second = (str(i["id"]) for i in h.incidents()[:2])
    now = datetime.now(UTC)
    token = sign(LINK_KEY, first, "officer_a", now=now, ttl=timedelta(minutes=30))
    with api_server(api_settings(h), rules()) as base, httpx.Client(base_url=base) as client:
        shown = client.get(f"/l/{first}/{token}")
        assert shown.status_code == 200 and '<form method="post">' in shown.text
        assert "PM2.5" in shown.text and "officer_a" in shown.text
        assert "<script" not in shown.text and "http" not in shown.text.split("<body>")[1]
        client.get(f"/l/{first}/{token}")  # a mail scanner fetching it again
        assert h.incidents()[0]["state"] == "open"  # GET changed nothing
        with h.owner() as conn:
            assert conn.execute("SELECT count(*) FROM link_uses").fetchone() == (0,)

        assert client.post(f"/l/{second}/{token}").status_code == 403  # another incident
        tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        assert client.post(f"/l/{first}/{tampered}").status_code == 403  # changed signature
        forged = sign(b"another key", first, "officer_a", now=now, ttl=timedelta(minutes=30))
        assert client.post(f"/l/{first}/{forged}").status_code == 403
        old = sign(LINK_KEY, first, "officer_a", now=now - timedelta(hours=1),
                   ttl=timedelta(minutes=30))  # fmt: skip
        expired = client.post(f"/l/{first}/{old}")
        assert expired.status_code == 403 and "expired" in expired.text
        assert h.incidents()[0]["state"] == "open"

        done = client.post(f"/l/{first}/{token}")
        assert done.status_code == 200 and "Acknowledged by officer_a" in done.text
        (row,) = [r for r in history(h, first) if r["kind"] == "acknowledged"]
        assert (row["actor"], row["channel"]) == ("officer_a", "link")
        reused = client.post(f"/l/{first}/{token}")
        assert reused.status_code == 409 and "already been used" in reused.text


def test_the_committed_openapi_document_is_what_the_app_serves(settings: Settings) -> None:
    committed = json.loads(Path(OPENAPI).read_text())
    assert committed == json.loads(json.dumps(openapi_document(settings))), (
        "docs/api/openapi.json is stale: run `ioc api openapi`"
    )


def test_tokens_from_the_cli_are_shown_once_listed_without_secrets_and_revoked(
    h: Harness,
) -> None:
    from typer.testing import CliRunner

    from ioc.cli import app

    env = {"IOC_DB__NAME": h.dbname, "IOC_API__TOKEN_KEY": TOKEN_KEY.decode()}
    run = CliRunner().invoke
    made = run(app, ["tokens", "create", "--name", "Nguyễn Lan", "--role", "officer"], env=env)
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("ioc_") and len(token) > 50
    assert run(app, ["tokens", "create", "--name", "x", "--role", "boss"], env=env).exit_code == 2
    no_key = run(app, ["tokens", "create", "--name", "x", "--role", "viewer"],
                 env={"IOC_DB__NAME": h.dbname})  # fmt: skip
    assert no_key.exit_code == 2 and "IOC_API__TOKEN_KEY" in no_key.output
    listed = run(app, ["tokens", "list"], env=env)
    token_id = token.split("_")[1]
    assert token_id in listed.output and "officer" in listed.output
    assert token.split("_", 2)[2] not in listed.output
    with api_server(api_settings(h), rules()) as base, httpx.Client(base_url=base) as client:
        assert client.get("/incidents", headers=auth(token)).status_code == 200
        assert run(app, ["tokens", "revoke", token_id], env=env).exit_code == 0
        assert client.get("/incidents", headers=auth(token)).status_code == 401
