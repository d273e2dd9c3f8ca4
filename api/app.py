"""`ioc api`: the incident API (FastAPI) and the one-tap acknowledgement link.

- Bearer tokens per person (`ioc tokens create`), hashed with a key and compared in constant time;
  roles are ordered: viewer (reads) < officer (acknowledges, resolves, comments) < admin
  (silences). Every action is written to the incident's history with the token's person and the
  channel `api`; a link's with its officer and `link`.
- Hardening: bodies over `max_body_bytes` get 413 before the app reads them; each token gets
  `rate_per_minute` requests (429 with Retry-After; links are limited per client address); CORS
  is closed unless origins are configured; every error is JSON `{"error": {"status", "code",
  "message"}}` with no internals; the access log names the route, never the path's token or a
  header.
- The link: `GET /l/{incident}/{token}` shows a confirmation page and changes nothing (mail
  scanners fetch links); only the page's `POST` acknowledges, once.
"""

import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import psycopg
import structlog
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from psycopg_pool import ConnectionPool
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from access.links import LinkError, verify
from access.tokens import allows, matches, split
from api import page, store
from notifier.silences import SilenceError, add_silence, expire_silence, list_silences
from paging.model import RouteMatch
from rules.load import RuleSet
from rules.model import Correlation, Severity, parse_duration
from sinks.incidents import IncidentActionError, act, payload_of_row
from streams.settings import Settings

log = structlog.get_logger(__name__)

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid",
         429: "rate_limited", 500: "internal", 503: "unavailable"}  # fmt: skip


# -- models (the OpenAPI document is made from them) -------------------------------------------


class Text(BaseModel):
    vi: str
    en: str


class Incident(BaseModel):
    id: str
    version: int
    rule_id: str
    key: str
    state: Literal["open", "acknowledged", "resolved"]
    severity: str
    category: str
    subcategory: str
    title: str
    description: Text
    zone_id: str | None
    entity_id: str | None
    opened_at: str
    last_seen: str
    resolved_at: str | None
    resolved_by: str | None
    acknowledged_at: str | None
    acknowledged_by: str | None
    count: int
    last_value: float | None
    peak_value: float | None
    flapping: bool
    flap_count: int


class HistoryEntry(BaseModel):
    at: str
    kind: str
    actor: str
    channel: str
    detail: dict[str, Any]


class IncidentWithHistory(Incident):
    history: list[HistoryEntry]


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=2000)


class Comment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zone: list[str] | None = None
    domain: list[str] | None = None
    severity: list[Severity] | None = None
    rule: list[str] | None = None
    starts_at: AwareDatetime | None = Field(None, description="Default: now.")
    duration: str = Field("2h", description="30m, 2h, 1d")
    comment: str = Field("", max_length=2000)


class Silence(BaseModel):
    id: str
    matchers: dict[str, list[str]]
    starts_at: str
    ends_at: str
    created_by: str
    comment: str
    state: Literal["active", "pending", "expired"]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str


class Error(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (401, 403, 404, 409, 413, 422, 429)
}


# -- the pieces --------------------------------------------------------------------------------


class RateLimiter:
    """A sliding one-minute window of request times per key."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> float | None:
        """None if allowed (and counted), else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                return 60 - (now - seen[0])
            seen.append(now)
            return None


class BodyLimit:
    """413 for a body over `limit` bytes, before the app reads it (Content-Length or counted)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(scope, receive, send, self.limit)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await _too_large(scope, receive, send, self.limit)
                return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = _error(413, f"the request body is larger than {limit} bytes")
    await response(scope, receive, send)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    code = CODES.get(status, "error")
    return JSONResponse({"error": {"status": status, "code": code, "message": message}},
                        status_code=status, headers=headers)  # fmt: skip


class Caller(BaseModel):
    token_id: str
    name: str
    role: str


def incident_out(row: dict[str, Any]) -> dict[str, Any]:
    body = payload_of_row(row)
    body["acknowledged_at"] = store.iso(row.get("acknowledged_at"))
    return body


# -- the app -----------------------------------------------------------------------------------


def create_app(settings: Settings, ruleset: RuleSet, pool: ConnectionPool | None = None) -> FastAPI:
    """The API on a connection pool for the api role (opened here unless given)."""
    api_settings = settings.api
    if api_settings.token_key is None:
        raise ValueError("IOC_API__TOKEN_KEY must be set (the key API tokens are hashed with)")
    token_key = api_settings.token_key.get_secret_value().encode()
    link_key = api_settings.link_key.get_secret_value().encode() if api_settings.link_key else None
    domains = {rule.id: "compound" if isinstance(rule, Correlation) else rule.domain
               for rule in ruleset}  # fmt: skip
    connections = pool or ConnectionPool(
        settings.db.conninfo("api"), min_size=1, max_size=4, open=False,
        kwargs={"autocommit": True}, timeout=5,
    )  # fmt: skip
    limiter = RateLimiter(api_settings.rate_per_minute)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if pool is None:
            connections.open(wait=False)
        try:
            yield
        finally:
            if pool is None:
                connections.close()

    app = FastAPI(
        lifespan=lifespan,
        title="IOC incident API",
        version="1",
        description="Incidents, their history and silences for the operations center's tools; "
        "acknowledgement from a page's one-tap link. Bearer tokens from `ioc tokens create`.",
    )
    app.state.pool = connections

    if api_settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=api_settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])  # fmt: skip

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        log.info("api.request", method=request.method,
                 route=getattr(route, "path", "(no route)"), status=response.status_code,
                 caller=request.scope.get("ioc_caller"),
                 ms=round((time.perf_counter() - started) * 1000, 1))  # fmt: skip
        return response

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return _error(422, where)

    @app.exception_handler(psycopg.OperationalError)
    async def _database(_request: Request, _exc: Exception) -> JSONResponse:
        return _error(503, "the database is unavailable; try again shortly")

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.error("api.error", ref=ref, error_class=type(exc).__name__)
        return _error(500, f"internal error (reference {ref})")

    @contextmanager
    def connection() -> Iterator[psycopg.Connection[Any]]:
        with connections.connection() as conn:
            yield conn

    def caller(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        parts = split(token.strip()) if scheme.lower() == "bearer" else None
        if parts is None:
            raise HTTPException(401, "a bearer token is required",
                                {"WWW-Authenticate": "Bearer"})  # fmt: skip
        token_id, secret = parts
        with connection() as conn:
            row = store.token_row(conn, token_id)
        if row is None or not matches(token_key, secret, row["hash"]):
            raise HTTPException(401, "the token is not valid", {"WWW-Authenticate": "Bearer"})
        wait = limiter.check(f"token:{token_id}")
        if wait is not None:
            raise HTTPException(429, "too many requests for this token",
                                {"Retry-After": str(max(1, round(wait)))})  # fmt: skip
        request.scope["ioc_caller"] = token_id
        return Caller(token_id=token_id, name=row["name"], role=row["role"])

    def needs(role: str) -> Callable[..., Caller]:
        def check(who: Annotated[Caller, Depends(caller)]) -> Caller:
            if not allows(who.role, role):
                raise HTTPException(403, f"this needs the {role} role; the token is {who.role}")
            return who

        return check

    Viewer = Annotated[Caller, Depends(needs("viewer"))]
    Officer = Annotated[Caller, Depends(needs("officer"))]
    Admin = Annotated[Caller, Depends(needs("admin"))]

    @app.get("/healthz", response_model=Health)
    def healthz() -> dict[str, str]:
        try:
            with connection() as conn:
                conn.execute("SELECT 1")
        except Exception:  # any database failure is "unavailable" here
            return {"status": "degraded", "database": "unavailable"}
        return {"status": "ok", "database": "ok"}

    @app.get("/incidents", response_model=list[Incident], responses=ERRORS)
    def list_incidents(
        _who: Viewer,
        state: Literal["open", "acknowledged", "resolved"] | None = None,
        severity: Severity | None = None,
        zone: str | None = None,
        domain: str | None = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        rules = [r for r, d in domains.items() if d == domain] if domain else None
        with connection() as conn:
            rows = store.incidents(conn, state=state, severity=severity, zone=zone,
                                   rules=rules, limit=limit)  # fmt: skip
        return [incident_out(row) for row in rows]

    def one(conn: psycopg.Connection[Any], incident_id: str) -> dict[str, Any]:
        row = store.incident(conn, incident_id)
        if row is None:
            raise HTTPException(404, f"no incident {incident_id}")
        return row

    @app.get("/incidents/{incident_id}", response_model=IncidentWithHistory, responses=ERRORS)
    def get_incident(incident_id: str, _who: Viewer) -> dict[str, Any]:
        with connection() as conn:
            row = one(conn, incident_id)
            history = store.history(conn, row["id"])
        return incident_out(row) | {"history": [h | {"at": h["at"].isoformat()} for h in history]}

    def do(incident_id: str, action: str, who: Caller, note: str | None) -> dict[str, Any]:
        with connection() as conn:
            one(conn, incident_id)
            try:
                row = act(conn, incident_id, action, who.name, "api", note)
            except IncidentActionError as exc:
                raise HTTPException(409, str(exc)) from None
        return incident_out(row)

    @app.post("/incidents/{incident_id}/ack", response_model=Incident, responses=ERRORS)
    def acknowledge(incident_id: str, who: Officer, body: Action | None = None) -> dict[str, Any]:
        return do(incident_id, "acknowledge", who, body.note if body else None)

    @app.post("/incidents/{incident_id}/resolve", response_model=Incident, responses=ERRORS)
    def resolve(incident_id: str, who: Officer, body: Action | None = None) -> dict[str, Any]:
        return do(incident_id, "resolve", who, body.note if body else None)

    @app.post("/incidents/{incident_id}/comments", response_model=Incident, responses=ERRORS,
              status_code=201)  # fmt: skip
    def comment(incident_id: str, who: Officer, body: Comment) -> dict[str, Any]:
        return do(incident_id, "comment", who, body.text)

    def silence_out(row: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        state = ("expired" if row["ends_at"] <= now else
                 "pending" if row["starts_at"] > now else "active")  # fmt: skip
        return {"id": str(row["id"]), "matchers": row["matchers"],
                "starts_at": row["starts_at"].isoformat(), "ends_at": row["ends_at"].isoformat(),
                "created_by": row["created_by"], "comment": row["comment"], "state": state}  # fmt: skip

    @app.post("/silences", response_model=Silence, responses=ERRORS, status_code=201)
    def create_silence(who: Admin, body: SilenceIn) -> dict[str, Any]:
        try:
            length: timedelta = parse_duration(body.duration)
            matchers = RouteMatch(zone=body.zone, domain=body.domain, severity=body.severity,
                                  rule=body.rule)  # fmt: skip
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        starts = body.starts_at or datetime.now(UTC)
        with connection() as conn:
            try:
                row = add_silence(conn, matchers, starts, starts + length, who.name, body.comment)
            except SilenceError as exc:
                raise HTTPException(422, str(exc)) from None
        return silence_out(row)

    @app.get("/silences", response_model=list[Silence], responses=ERRORS)
    def get_silences(_who: Viewer, expired: bool = False) -> list[dict[str, Any]]:
        with connection() as conn:
            return [silence_out(r) for r in list_silences(conn, include_expired=expired)]

    @app.delete("/silences/{silence_id}", response_model=Silence, responses=ERRORS)
    def delete_silence(silence_id: str, who: Admin) -> dict[str, Any]:
        with connection() as conn:
            try:
                row = expire_silence(conn, silence_id, who.name)
            except SilenceError as exc:
                raise HTTPException(404, str(exc)) from None
        return silence_out(row)

    # -- the one-tap link --------------------------------------------------------------------

    def claims_of(request: Request, incident_id: str, token: str) -> Any:
        client = request.client.host if request.client else "-"
        wait = limiter.check(f"link:{client}")
        if wait is not None:
            raise HTTPException(429, "too many requests", {"Retry-After": str(max(1, round(wait)))})
        if link_key is None:
            raise HTTPException(404, "links are not enabled here")
        try:
            return verify(link_key, incident_id, token)
        except LinkError as exc:
            raise HTTPException(403, str(exc)) from None

    def html_error(status: int, vi: str, en: str) -> HTMLResponse:
        return HTMLResponse(page.result(False, vi, en), status_code=status)

    @app.get("/l/{incident_id}/{token}", response_class=HTMLResponse, include_in_schema=True)
    def link_page(request: Request, incident_id: str, token: str) -> HTMLResponse:
        """The confirmation page. Changes nothing."""
        try:
            claims = claims_of(request, incident_id, token)
        except HTTPException as exc:
            return html_error(exc.status_code, "Liên kết không dùng được", str(exc.detail))
        with connection() as conn:
            row = store.incident(conn, incident_id)
            zone = store.zone_name(conn, row["zone_id"]) if row and row["zone_id"] else None
        if row is None:
            return html_error(404, "Không tìm thấy sự cố", "No such incident")
        html = page.confirm(row, claims.officer, claims.expires, zone, api_settings.timezone)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.post("/l/{incident_id}/{token}", response_class=HTMLResponse)
    def link_act(request: Request, incident_id: str, token: str) -> HTMLResponse:
        """The button: acknowledges as the link's officer, once."""
        try:
            claims = claims_of(request, incident_id, token)
        except HTTPException as exc:
            return html_error(exc.status_code, "Liên kết không dùng được", str(exc.detail))
        with connection() as conn:
            try:
                with conn.transaction():
                    if not store.use_link(conn, claims.nonce, incident_id, claims.officer,
                                          claims.action):  # fmt: skip
                        return html_error(409, "Liên kết đã được dùng",
                                          "This link has already been used")  # fmt: skip
                    act(conn, incident_id, "acknowledge", claims.officer, "link")
            except IncidentActionError as exc:
                return html_error(409, "Không xác nhận được", str(exc))
        return HTMLResponse(page.result(True, f"Đã xác nhận: {claims.officer}",
                                        f"Acknowledged by {claims.officer}"))  # fmt: skip

    return app


def wrap(app: FastAPI, settings: Settings) -> ASGIApp:
    """The app behind the body-size limit (outermost, before anything reads the body)."""
    return BodyLimit(app, settings.api.max_body_bytes)
