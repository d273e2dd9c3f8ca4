"""The notifier as an operator runs it (`ioc notifier`, a child process) under faults, on a scratch
database whose incidents the real pipeline opens, sending to real receivers in the test process.

- kill -9 in the middle of a burst of pages, with a slow mail server: every page arrives; the only
  ones that arrive twice are those a delivery transaction held in flight at the kill (at most one
  claim, `CLAIM`), and both copies carry the same notification id and Message-ID.
- Two notifiers on one burst: every page is written once and sent once (FOR UPDATE SKIP LOCKED),
  and both notifiers took part.
- A webhook that answers 500 for a while: each page is retried with a doubling wait, capped, with
  the same Idempotency-Key every time, until it is accepted; none is dropped.
- A slow mail server that answers each mail within the send timeout: a whole claim is sent at
  once, and no page is reported timed out and sent twice.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from geo import ZoneIndex
from localdev.processes import ChildCommand
from localdev.runtime import LocalPostgres
from notifier.deliver import SENDS_AT_ONCE
from streams.settings import Settings
from tests.integration.test_paging import reading, rows, rules
from tests.support.harness import Harness, pipeline_harness
from tests.support.paging import Mail, MailServer, WebhookServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Notifications one delivery transaction claims (deliver_once's limit): what a kill can catch.
CLAIM = SENDS_AT_ONCE
RETRY_FIRST_S = 0.4
RETRY_CAP_S = 1.6

#: One page per zone: a critical incident in each zone is its own group, paged at once.
PAGING = """
receivers:
  center: [{{secret: {secret}}}]
grouping:
  group_by: [zone]
  group_wait: 1s
  critical_group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
routes:
  - name: all
    receivers: [center]
"""


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


@pytest.fixture(scope="module")
def zone_points(settings: Settings) -> list[dict[str, Any]]:
    """A point inside each zone of the city, as GeoJSON."""
    zones = ZoneIndex.from_file(settings.geo.zone_file).zones
    points = [zone.geometry.representative_point() for zone in zones]
    return [{"type": "Point", "coordinates": [p.x, p.y]} for p in points]


@pytest.fixture
def spawned() -> Iterator[list[ChildCommand]]:
    """The notifiers a test starts; whatever the outcome, each is stopped at the end."""
    children: list[ChildCommand] = []
    yield children
    for child in children:
        child.stop(10)


def burst(h: Harness, points: Sequence[dict[str, Any]]) -> list[Any]:
    """One PM2.5 breach per zone, in one batch: a critical incident (and a page) per zone."""
    t = datetime.now(UTC) - timedelta(seconds=5)
    return [reading(h, f"burst-{n}", 90, entity=f"station-{n}", t=t, where=point)
            for n, point in enumerate(points)]  # fmt: skip


def notifier(h: Harness, logs: Path, spawned: list[ChildCommand], name: str,
             secrets: dict[str, str], **env: str) -> ChildCommand:  # fmt: skip
    """A real `ioc notifier` on the harness's database, with the rules the harness runs and a
    paging file whose one receiver is `secrets`' only secret, and `env` (not started)."""
    (secret,) = secrets
    paging = logs / "paging.yaml"
    paging.write_text(PAGING.format(secret=secret))
    rules_dir = logs / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "harness.yaml").write_text(h.rules or "rules: []")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")} | env | {
        "IOC_DB__HOST": h.settings.db.host,
        "IOC_DB__PORT": str(h.settings.db.port),
        "IOC_DB__NAME": h.dbname,
        "IOC_LOG_FORMAT": "json",
        "IOC_RULES__DIR": str(rules_dir),
        "IOC_PAGING__FILE": str(paging),
        "IOC_PAGING__POLL_INTERVAL_S": "0.1",
        "IOC_PAGING__RETRY_FIRST_S": str(RETRY_FIRST_S),
        "IOC_PAGING__RETRY_CAP_S": str(RETRY_CAP_S),
    }  # fmt: skip
    env |= {f"IOC_PAGING__SECRETS__{k.upper()}": v for k, v in secrets.items()}
    child = ChildCommand(["notifier"], logs / f"notifier-{name}.log", env)
    spawned.append(child)
    return child


def log_events(child: ChildCommand, event: str) -> list[dict[str, Any]]:
    found = []
    for line in child.log_path.read_text(errors="replace").splitlines():
        if event in line and line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


async def started(*children: ChildCommand, timeout: float = 60) -> None:
    """Start each child and wait until it logs notifier.started."""
    for child in children:
        child.start()
    deadline = time.monotonic() + timeout
    for child in children:
        while not log_events(child, "notifier.started"):
            assert child.running(), f"the notifier exited:\n{child.log_tail()}"
            assert time.monotonic() < deadline, f"the notifier did not start:\n{child.log_tail()}"
            await asyncio.sleep(0.2)


def unsent(h: Harness) -> set[str]:
    sql = "SELECT id::text AS id FROM notifications WHERE sent_at IS NULL"
    return {r["id"] for r in rows(h, sql)}


def claimable(h: Harness) -> set[str]:
    """Unsent notifications no transaction holds: FOR SHARE skips the rows a delivery claimed
    FOR UPDATE (and holds the others only for this statement)."""
    sql = "SELECT id::text AS id FROM notifications WHERE sent_at IS NULL FOR SHARE SKIP LOCKED"
    return {r["id"] for r in rows(h, sql)}


async def all_sent(h: Harness, count: int, children: Sequence[ChildCommand],
                   timeout: float = 40) -> list[dict[str, Any]]:  # fmt: skip
    """Wait until `count` notifications exist and every one is sent; the rows."""
    deadline = time.monotonic() + timeout
    while True:
        found = rows(h, "SELECT id::text AS id, sent_at, attempts, last_error FROM notifications")
        if len(found) >= count and all(r["sent_at"] is not None for r in found):
            return found
        tails = "\n".join(c.log_tail(10) for c in children)
        assert all(c.running() for c in children), f"a notifier exited:\n{tails}"
        assert time.monotonic() < deadline, (
            f"{sum(r['sent_at'] is not None for r in found)} of {len(found)} notifications sent "
            f"({count} expected) after {timeout} s:\n{tails}"
        )
        await asyncio.sleep(0.2)


def copies(mails: Sequence[Mail]) -> dict[str, list[Mail]]:
    """Mails by the notification id they carry."""
    by_id: dict[str, list[Mail]] = defaultdict(list)
    for mail in mails:
        by_id[str(mail.message["X-IOC-Notification-Id"])].append(mail)
    return by_id


async def test_kill_9_mid_send_loses_no_page_and_resends_only_what_was_in_flight(
    settings: Settings,
    superuser: str,
    zone_points: list[dict[str, Any]],
    tmp_path: Path,
    spawned: list[ChildCommand],
) -> None:
    pages = 60
    async with pipeline_harness(settings, superuser, rules=rules("critical")) as h:
        with MailServer(delay=1.0) as mail:  # a claim's mails arrive, then wait 1 s to be accepted
            secrets = {"center": mail.url("center@ioc.test")}
            first = notifier(h, tmp_path, spawned, "first", secrets)
            await started(first)
            await h.handle("environment", burst(h, zone_points[:pages]))
            await mail.wait_for(lambda m: len(m) >= pages // 2, timeout=30)
            claimed = unsent(h) - claimable(h)
            first.kill9()
            await asyncio.sleep(0.5)  # what the killed sender had written reaches the server
            arrived = {str(m.message["X-IOC-Notification-Id"]) for m in mail.mails}
            deadline = time.monotonic() + 15
            while (left := unsent(h)) != claimable(h):  # the killed claim's locks are released
                assert time.monotonic() < deadline, "the killed notifier's claim is still held"
                await asyncio.sleep(0.2)
            in_flight = arrived & left  # delivered, never recorded as sent

            # the kill landed mid-send: some pages out, some not, a claim open with mails sent
            assert 0 < len(arrived) < pages, len(arrived)
            assert left and 1 <= len(claimed) <= CLAIM, (len(left), len(claimed))
            assert in_flight, "no claimed notification had reached the server at the kill"

            second = notifier(h, tmp_path, spawned, "second", secrets)
            await started(second)
            sent = await all_sent(h, pages, [second])
            await mail.wait_for(lambda m: len(m) >= pages + len(in_flight), timeout=20)
            await asyncio.sleep(1.0)  # nothing more comes
            second.stop(20)

        assert len(sent) == pages  # one page per zone, written once
        by_id = copies(mail.mails)
        assert set(by_id) == {r["id"] for r in sent}, "a notification never arrived"
        twice = {nid for nid, got in by_id.items() if len(got) > 1}
        assert all(len(got) <= 2 for got in by_id.values())
        assert twice == in_flight, "only the notifications in flight at the kill arrive twice"
        assert len(twice) <= CLAIM
        for nid, got in by_id.items():
            assert {m.id for m in got} == {f"<{nid}@ioc-notifier>"}
            assert len({(m.subject, m.body) for m in got}) == 1
        # the attempt the kill cut short left no trace: the resent rows were sent at the first try
        assert {r["attempts"] for r in sent} == {1}


async def test_two_notifiers_on_one_burst_send_each_page_exactly_once(
    settings: Settings,
    superuser: str,
    zone_points: list[dict[str, Any]],
    tmp_path: Path,
    spawned: list[ChildCommand],
) -> None:
    pages = 80
    async with pipeline_harness(settings, superuser, rules=rules("critical")) as h:
        with MailServer(delay=0.5) as mail:
            secrets = {"center": mail.url("center@ioc.test")}
            both = [notifier(h, tmp_path, spawned, name, secrets) for name in ("a", "b")]
            await started(*both)
            await h.handle("environment", burst(h, zone_points[:pages]))
            sent = await all_sent(h, pages, both)
            await mail.wait_for(lambda m: len(m) >= pages, timeout=20)
            await asyncio.sleep(1.0)  # nothing more comes
            for child in both:
                child.stop(20)

        assert len(sent) == pages  # every zone's group paged once, not once per notifier
        assert {r["attempts"] for r in sent} == {1}
        by_id = copies(mail.mails)
        assert set(by_id) == {r["id"] for r in sent}
        assert Counter(len(got) for got in by_id.values()) == {1: pages}
        shares = [sum(e["sent"] for e in log_events(child, "notifier.sent")) for child in both]
        assert sum(shares) == pages and all(shares), f"each notifier's sends: {shares}"


async def test_a_failing_webhook_gets_each_page_again_with_backoff_and_the_same_key(
    settings: Settings,
    superuser: str,
    zone_points: list[dict[str, Any]],
    tmp_path: Path,
    spawned: list[ChildCommand],
) -> None:
    pages, failures = 3, 4
    async with pipeline_harness(settings, superuser, rules=rules("critical")) as h:
        with WebhookServer() as hook:
            hook.status = 500
            child = notifier(h, tmp_path, spawned, "hook", {"hook": hook.url("ops")})
            await started(child)
            await h.handle("environment", burst(h, zone_points[:pages]))
            deadline = time.monotonic() + 30
            while True:
                tries = Counter(x.headers.get("Idempotency-Key") for x in hook.hooks)
                if len(tries) == pages and min(tries.values()) >= failures:
                    break
                assert child.running(), child.log_tail()
                assert time.monotonic() < deadline, f"attempts so far: {tries}"
                await asyncio.sleep(0.1)
            failing = rows(h, "SELECT sent_at, attempts, last_error FROM notifications")
            hook.status = 200
            sent = await all_sent(h, pages, [child])
            await asyncio.sleep(RETRY_CAP_S + 0.5)  # nothing more comes
            child.stop(20)

        # while the webhook failed, each row said so and waited to be tried again
        assert all(r["sent_at"] is None and r["attempts"] >= failures - 1 for r in failing)
        assert all("json://127.0.0.1" in r["last_error"] for r in failing), failing
        by_key: dict[str, list[Any]] = defaultdict(list)
        for x in hook.hooks:
            by_key[x.headers["Idempotency-Key"]].append(x)
        assert set(by_key) == {r["id"] for r in sent}, "a page never reached the webhook"
        for r in sent:
            got = by_key[r["id"]]
            assert [x.status for x in got] == [500] * (len(got) - 1) + [200], r["id"]
            assert r["attempts"] == len(got) and r["last_error"] is None
            assert len({x.body for x in got}) == 1  # the same page every time
            gaps = [b.received - a.received for a, b in itertools.pairwise(got)]
            for n, gap in enumerate(gaps):  # a doubling wait, capped (scheduling slack allowed)
                wait = min(RETRY_CAP_S, RETRY_FIRST_S * 2**n)
                assert wait * 0.8 <= gap <= wait + 3.0, (r["id"], gaps)


async def test_a_slow_mail_server_gets_a_whole_claim_at_once_and_each_page_once(
    settings: Settings,
    superuser: str,
    zone_points: list[dict[str, Any]],
    tmp_path: Path,
    spawned: list[ChildCommand],
) -> None:
    # Each mail is answered within the send timeout. With a thread per send a claim takes one
    # delay; on 6 threads (asyncio's default pool on 2 cores) it took 4 x 3 s, past the 10 s
    # (send timeout + 5 s) that the last sends were given, counted from the claim.
    pages, delay, limit = CLAIM, 3.0, 5.0
    async with pipeline_harness(settings, superuser, rules=rules("critical")) as h:
        with MailServer(delay=delay) as mail:
            secrets = {"center": mail.url("center@ioc.test")}
            child = notifier(
                h, tmp_path, spawned, "slow", secrets, IOC_PAGING__SEND_TIMEOUT_S=str(limit)
            )
            await started(child)
            await h.handle("environment", burst(h, zone_points[:pages]))
            sent = await all_sent(h, pages, [child])
            await asyncio.sleep(delay + 1.0)  # a send given up on would still arrive now
            child.stop(20)

        assert log_events(child, "notifier.send_failed") == []
        assert {r["attempts"] for r in sent} == {1}
        by_id = copies(mail.mails)
        assert Counter(len(got) for got in by_id.values()) == {1: pages}
        arrivals = [m.received for m in mail.mails]
        assert max(arrivals) - min(arrivals) < 2 * delay, "the claim's sends waited for each other"
