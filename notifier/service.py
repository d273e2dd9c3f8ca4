"""`ioc notifier`: the paging loop and the delivery loop, each on its own connection.

The paging loop routes new transitions, flushes due groups and runs due escalation steps every
`poll_interval_s` (at once again while there is more to route). The delivery loop sends due
notifications; a slow mail server holds up only the delivery loop. Both survive a database
outage: the connection is dropped, the error logged once, and the loop tries again with a
doubling wait. Several notifier processes may run against one database.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog

from notifier.core import Context, Links, deliver_once, escalate_once, flush_once, route_once
from notifier.deliver import DeliveryError, check_url
from paging.load import PagingError, load_paging
from rules.load import load_rules
from sinks.incidents import OUTBOX_CHANNEL
from streams.settings import Settings

log = structlog.get_logger(__name__)


def build_context(settings: Settings) -> Context:
    """The paging file (with every secret it names set and readable by apprise) and the rules.
    Raises PagingError naming what is wrong."""
    config = load_paging(settings.paging)
    problems = []
    for name in sorted(config.secret_names()):
        try:
            check_url(settings.paging.secrets[name].get_secret_value())
        except DeliveryError as exc:
            problems.append(f"secret {name!r}: {exc}")
    if problems:
        raise PagingError(problems)
    api = settings.api
    links = None
    if api.public_url and api.link_key is not None:
        links = Links(api.public_url, api.link_key.get_secret_value().encode(),
                      timedelta(seconds=api.link_ttl_s))  # fmt: skip
    return Context(config, settings.paging, load_rules(settings.rules).enabled(), links=links)


def now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(self, settings: Settings, context: Context) -> None:
        self.settings = settings
        self.ctx = context
        self.stopping = asyncio.Event()
        # set when there may be work before the next poll: new outbox rows (the workers'
        # NOTIFY), or pages just written (for the delivery loop)
        self.wake = {"paging": asyncio.Event(), "delivery": asyncio.Event()}
        self.sent = 0
        self.failed = 0

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self.settings.db.conninfo("notifier"), autocommit=True
        )
        if not self.ctx.zone_names:
            async with conn.cursor() as cur:
                await cur.execute("SELECT id, name FROM zones")
                self.ctx.zone_names = {zid: name for zid, name in await cur.fetchall()}
        return conn

    async def _loop(self, name: str, step: Any) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        wait = self.settings.stream.retry_first_s
        failing = False
        while not self.stopping.is_set():
            try:
                if conn is None or conn.closed:
                    conn = await self._connect()
                busy = await step(conn)
                if failing:
                    log.info("notifier.recovered", loop=name)
                failing, wait = False, self.settings.stream.retry_first_s
            except (psycopg.OperationalError, psycopg.errors.DeadlockDetected,
                    psycopg.errors.SerializationFailure) as exc:  # fmt: skip
                if not failing:
                    log.warning("notifier.database_unavailable", loop=name, error=str(exc)[:200])
                failing = True
                if conn is not None and not isinstance(exc, psycopg.errors.DeadlockDetected):
                    with contextlib.suppress(Exception):
                        await conn.close()
                    conn = None
                await self._sleep(wait)
                wait = min(wait * 2, self.settings.stream.retry_cap_s)
                continue
            if not busy:
                await self._sleep(self.ctx.settings.poll_interval_s, self.wake[name])
        if conn is not None:
            await conn.close()

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleep `seconds`, or until stopping, or until `wake` is set (then clear it)."""
        waits = [asyncio.ensure_future(self.stopping.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            if wake is not None:
                wake.clear()

    async def _listen(self) -> None:
        """Wake the paging loop on the workers' NOTIFY (sinks.incidents.OUTBOX_CHANNEL); the
        poll stays as the fallback, so a lost listener only costs latency."""
        wait = self.settings.stream.retry_first_s
        while not self.stopping.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.settings.db.conninfo("notifier"), autocommit=True
                )
                async with conn:
                    await conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    wait = self.settings.stream.retry_first_s
                    gen = conn.notifies()
                    stop = asyncio.ensure_future(self.stopping.wait())
                    try:
                        while not self.stopping.is_set():
                            nxt = asyncio.ensure_future(anext(gen))
                            done, _ = await asyncio.wait({nxt, stop},
                                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                            if nxt not in done:
                                nxt.cancel()
                                break
                            nxt.result()
                            self.wake["paging"].set()
                    finally:
                        stop.cancel()
            except (psycopg.OperationalError, StopAsyncIteration):
                await self._sleep(wait)
                wait = min(wait * 2, self.settings.stream.retry_cap_s)

    async def _paging_step(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        routed = await route_once(conn, self.ctx, now())
        pages = await flush_once(conn, self.ctx, now())
        steps = await escalate_once(conn, self.ctx, now())
        if routed or pages or steps:
            log.debug("notifier.paging", routed=routed, pages=pages, escalations=steps)
        if pages or steps:
            self.wake["delivery"].set()
        return routed >= self.ctx.settings.claim_limit

    async def _delivery_step(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        done = await deliver_once(conn, self.ctx, now())
        self.sent += done.sent
        self.failed += done.failed
        if done.sent:
            log.info("notifier.sent", sent=done.sent)
        for error in done.errors:
            log.warning("notifier.send_failed", error=error)
        return done.sent + done.failed > 0

    async def run(self) -> None:
        log.info("notifier.started", routes=len(self.ctx.config.routes),
                 receivers=len(self.ctx.config.receivers))  # fmt: skip
        await asyncio.gather(
            self._loop("paging", self._paging_step),
            self._loop("delivery", self._delivery_step),
            self._listen(),
        )
        log.info("notifier.stopped", sent=self.sent, failed=self.failed)

    def stop(self) -> None:
        self.stopping.set()
