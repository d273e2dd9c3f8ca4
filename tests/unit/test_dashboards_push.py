"""`ioc dashboards push` against a real HTTP server on 127.0.0.1 (stdlib http.server) that
answers the few Grafana endpoints grafana-client calls and records every request.

The payloads carry the dashboards' uids and the folder; a second push sends no change; a bad
URL, a bad token (401) and a missing permission (403) each give one clear line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dashboards.push import FOLDER_UID, PushError, datasource_payload, push
from sinks.config import DatabaseSettings

TOKEN = "glsa_test"


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, str, Any]] = []
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.forbid_writes = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET"]


class Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((method, self.path, body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._answer(401, {"message": "invalid API key"})
        if method != "GET" and self.server.forbid_writes:
            return self._answer(403, {"message": "You'll need additional permissions"})
        s = self.server
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["api", "folders"]:
            if method == "GET" and len(parts) == 3:
                found = s.folders.get(parts[2])
                return (
                    self._answer(200, found)
                    if found
                    else self._answer(404, {"message": "not found"})
                )
            if method == "POST":
                s.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "version": 1}
                return self._answer(200, s.folders[body["uid"]])
        if parts[:3] == ["api", "dashboards", "uid"] and method == "GET":
            found = s.dashboards.get(parts[3])
            return (
                self._answer(200, found)
                if found
                else self._answer(404, {"message": "Dashboard not found"})
            )
        if parts[:3] == ["api", "dashboards", "db"] and method == "POST":
            dash = dict(body["dashboard"])
            old = s.dashboards.get(dash["uid"])
            version = old["dashboard"]["version"] + 1 if old else 1
            dash.update(id=7, version=version)
            s.dashboards[dash["uid"]] = {
                "dashboard": dash,
                "meta": {"folderUid": body["folderUid"]},
            }
            return self._answer(200, {"status": "success", "uid": dash["uid"], "version": version})
        if parts[:3] == ["api", "datasources", "uid"] and method == "GET":
            found = s.datasources.get(parts[3])
            return (
                self._answer(200, found)
                if found
                else self._answer(404, {"message": "Data source not found"})
            )
        if parts[:2] == ["api", "datasources"] and method in ("POST", "PUT"):
            stored = {k: v for k, v in body.items() if k != "secureJsonData"}
            stored["secureJsonFields"] = {"password": True}
            s.datasources[body["uid"]] = stored
            return self._answer(200, {"message": "Datasource added", "datasource": stored})
        return self._answer(404, {"message": f"no route {method} {self.path}"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    out = []
    for uid, title in (("ioc-wall", "IOC overview"), ("ioc-environment", "Environment")):
        path = tmp_path / f"{uid}.json"
        path.write_text(json.dumps({"uid": uid, "title": title, "panels": [], "schemaVersion": 41}))
        out.append(path)
    return out


def test_first_push_creates_folder_datasource_and_dashboards_with_their_uids(
    grafana: FakeGrafana, files: list[Path]
) -> None:
    ds = datasource_payload(DatabaseSettings(), "timescaledb:5432")
    report = push(grafana.url, TOKEN, files, datasource=ds)
    assert report.created == [
        f"folder {FOLDER_UID}", "datasource ioc-timescale", "dashboard ioc-wall",
        "dashboard ioc-environment",
    ]  # fmt: skip
    saved = [body for method, path, body in grafana.writes() if path == "/api/dashboards/db"]
    assert [b["dashboard"]["uid"] for b in saved] == ["ioc-wall", "ioc-environment"]
    assert {b["folderUid"] for b in saved} == {FOLDER_UID}
    assert all(b["overwrite"] is True for b in saved)
    sent_ds = next(b for m, p, b in grafana.writes() if p == "/api/datasources")
    assert sent_ds["uid"] == "ioc-timescale"
    assert sent_ds["type"] == "grafana-postgresql-datasource"
    assert sent_ds["user"] == "ioc_grafana"
    assert sent_ds["jsonData"]["timescaledb"] is True
    assert sent_ds["secureJsonData"]["password"] == "ioc-grafana-dev"


def test_a_second_push_sends_no_change(grafana: FakeGrafana, files: list[Path]) -> None:
    ds = datasource_payload(DatabaseSettings())
    push(grafana.url, TOKEN, files, datasource=ds)
    before = len(grafana.writes())
    report = push(grafana.url, TOKEN, files, datasource=ds)
    assert not report.changed
    assert len(grafana.writes()) == before  # only GETs the second time
    assert len(report.unchanged) == 4


def test_a_changed_dashboard_is_the_only_one_sent_again(
    grafana: FakeGrafana, files: list[Path]
) -> None:
    push(grafana.url, TOKEN, files)
    data = json.loads(files[1].read_text())
    files[1].write_text(json.dumps({**data, "title": "Environment and resources"}))
    before = len(grafana.writes())
    report = push(grafana.url, TOKEN, files)
    assert report.updated == ["dashboard ioc-environment"]
    assert [p for _, p, _ in grafana.writes()[before:]] == ["/api/dashboards/db"]


def test_a_bad_token_is_one_clear_line(grafana: FakeGrafana, files: list[Path]) -> None:
    with pytest.raises(PushError, match=r"refused the credentials \(401\)") as info:
        push(grafana.url, "wrong", files)
    assert "\n" not in str(info.value)


def test_a_missing_permission_is_one_clear_line(grafana: FakeGrafana, files: list[Path]) -> None:
    grafana.forbid_writes = True
    with pytest.raises(PushError, match=r"denied creating the folder \(403\)") as info:
        push(grafana.url, TOKEN, files)
    assert "\n" not in str(info.value)


def test_a_bad_url_is_one_clear_line(files: list[Path]) -> None:
    with pytest.raises(PushError, match=r"cannot reach Grafana at http://127\.0\.0\.1:9") as info:
        push("http://127.0.0.1:9", TOKEN, files, timeout_s=2)
    assert "\n" not in str(info.value)
