"""`ioc dashboards push`: upload the committed dashboards to a Grafana with grafana-client.

Idempotent: each dashboard (and the folder, and the datasource when asked) is read first and
sent only when it differs, so a second push sends nothing. A dashboard counts as the same when
its JSON, without the `id` and `version` that Grafana assigns, is equal and it is in the folder.
Errors from Grafana are sorted once, here, into one-line messages (`PushError`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)
from niquests.exceptions import RequestException

from sinks.config import DatabaseSettings

DATASOURCE_UID = "ioc-timescale"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
FOLDER_UID = "city-operations"
FOLDER_TITLE = "City operations"
ASSIGNED = ("id", "version")  # fields Grafana sets on save


class PushError(Exception):
    """A push that cannot go on; the message is one line for the operator."""


@dataclass
class PushReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def _explain(exc: GrafanaException, url: str, what: str) -> PushError:
    if isinstance(exc, GrafanaUnauthorizedError):
        return PushError(f"Grafana at {url} refused the credentials (401): check the token")
    if isinstance(exc, GrafanaTimeoutError):
        return PushError(f"Grafana at {url} did not answer in time while {what}")
    status = getattr(exc, "status_code", 0)
    if status == 403:
        return PushError(
            f"Grafana at {url} denied {what} (403): the token's role lacks that permission"
        )
    if status == 0:
        return PushError(f"cannot reach Grafana at {url}: {' '.join(str(exc).split())[:200]}")
    message = getattr(exc, "message", "") or str(exc)
    return PushError(f"Grafana at {url} answered {status} while {what}: {message}"[:300])


def _unreachable(exc: Exception, url: str) -> PushError:
    reason = exc.__class__.__name__
    if "refused" in str(exc).lower():
        reason = "connection refused"
    elif "name or service not known" in str(exc).lower() or "resolve" in str(exc).lower():
        reason = "unknown host"
    return PushError(f"cannot reach Grafana at {url}: {reason}")


class Pusher:
    def __init__(self, api: GrafanaApi, url: str) -> None:
        self.api = api
        self.url = url
        self.report = PushReport()

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except GrafanaException as exc:
            raise _explain(exc, self.url, what) from None
        except RequestException as exc:
            raise _unreachable(exc, self.url) from None

    def _get(self, what: str, fn: Any, *args: Any) -> Any | None:
        """A GET where 404 means absent."""
        try:
            return fn(*args)
        except GrafanaClientError as exc:
            if getattr(exc, "status_code", None) == 404:
                return None
            raise _explain(exc, self.url, what) from None
        except GrafanaException as exc:
            raise _explain(exc, self.url, what) from None
        except RequestException as exc:
            raise _unreachable(exc, self.url) from None

    def folder(self, uid: str, title: str) -> None:
        found = self._get("reading the folder", self.api.folder.get_folder, uid)
        name = f"folder {uid}"
        if found is None:
            self._call("creating the folder", self.api.folder.create_folder, title, uid)
            self.report.created.append(name)
        elif found.get("title") != title:
            self._call("renaming the folder", self.api.folder.update_folder, uid, title,
                       found.get("version"), True)  # fmt: skip
            self.report.updated.append(name)
        else:
            self.report.unchanged.append(name)

    def datasource(self, wanted: Mapping[str, Any]) -> None:
        uid = str(wanted["uid"])
        name = f"datasource {uid}"
        found = self._get("reading the datasource", self.api.datasource.get_datasource_by_uid, uid)
        if found is None:
            self._call("creating the datasource", self.api.datasource.create_datasource,
                       dict(wanted))  # fmt: skip
            self.report.created.append(name)
            return
        public = {k: v for k, v in wanted.items() if k != "secureJsonData"}
        same = all(found.get(k) == v for k, v in public.items() if k != "jsonData") and all(
            (found.get("jsonData") or {}).get(k) == v for k, v in wanted["jsonData"].items()
        )
        if same and (found.get("secureJsonFields") or {}).get("password"):
            self.report.unchanged.append(name)
            return
        self._call("updating the datasource", self.api.datasource.update_datasource_by_uid,
                   uid, dict(wanted))  # fmt: skip
        self.report.updated.append(name)

    def dashboard(self, dashboard: Mapping[str, Any], folder_uid: str) -> None:
        uid = dashboard.get("uid")
        if not uid:
            raise PushError(
                f"dashboard {dashboard.get('title')!r} has no uid: it cannot be idempotent"
            )
        name = f"dashboard {uid}"
        found = self._get(f"reading {name}", self.api.dashboard.get_dashboard, uid)
        if found is not None:
            same = _comparable(found.get("dashboard") or {}) == _comparable(dashboard)
            if same and (found.get("meta") or {}).get("folderUid") == folder_uid:
                self.report.unchanged.append(name)
                return
        payload = {
            "dashboard": {**_comparable(dashboard), "id": None},
            "folderUid": folder_uid,
            "overwrite": True,
            "message": "ioc dashboards push",
        }
        self._call(f"saving {name}", self.api.dashboard.update_dashboard, payload)
        (self.report.updated if found is not None else self.report.created).append(name)


def _comparable(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dashboard.items() if k not in ASSIGNED}


def datasource_payload(db: DatabaseSettings, url: str | None = None) -> dict[str, Any]:
    """The datasource the provisioning file defines, for a Grafana without that file."""
    return {
        "name": "IOC TimescaleDB",
        "uid": DATASOURCE_UID,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": url or f"{db.host}:{db.port}",
        "user": db.grafana_user,
        "isDefault": True,
        "jsonData": {
            "database": db.name,
            "sslmode": "disable",
            "postgresVersion": 1500,
            "timescaledb": True,
            "maxOpenConns": 10,
            "connMaxLifetime": 14400,
        },
        "secureJsonData": {"password": db.grafana_password.get_secret_value()},
    }


def load_dashboards(paths: Sequence[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PushError(f"{path}: {exc}") from None
        out.append(data.get("dashboard", data) if isinstance(data, dict) else data)
    return out


def push(
    url: str,
    credential: str | tuple[str, str],
    paths: Sequence[Path],
    *,
    folder_uid: str = FOLDER_UID,
    folder_title: str = FOLDER_TITLE,
    datasource: Mapping[str, Any] | None = None,
    timeout_s: float = 10.0,
) -> PushReport:
    """Upload `paths` into the folder (made if missing), and the datasource when given."""
    dashboards = load_dashboards(paths)
    try:
        api = GrafanaApi.from_url(url, credential=credential, timeout=timeout_s)
    except (ValueError, TypeError) as exc:
        raise PushError(f"bad Grafana URL {url!r}: {exc}") from None
    pusher = Pusher(api, url)
    pusher.folder(folder_uid, folder_title)
    if datasource is not None:
        pusher.datasource(datasource)
    for dashboard in dashboards:
        pusher.dashboard(dashboard, folder_uid)
    return pusher.report
