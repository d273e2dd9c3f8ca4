"""Paging on the real database, a real SMTP server (aiosmtpd) and a real webhook receiver: the
notifier runs in-process against a scratch database whose incidents the real pipeline opens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr

from localdev.runtime import LocalPostgres
from notifier.core import Context
from notifier.service import Notifier
from paging.load import parse_paging
from rules import load_rule_files
from streams.settings import Settings
from tests.integration.test_rules_in_pipeline import TEXT
from tests.support.harness import Harness, pipeline_harness
from tests.support.paging import MailServer, WebhookServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


POINT = {"type": "Point", "coordinates": [108.0506, 12.6667]}  # a Buôn Ma Thuột ward
ELSEWHERE = {"type": "Point", "coordinates": [108.4390, 12.6925]}  # another commune


def rules(severity: str = "high", *, compound: bool = False) -> str:
    """pm25 per entity; with `compound`, also a water-level rule and a correlation of the two."""
    text = f"""
rules:
  - id: pm25-high
    kind: threshold
    title: PM2.5 above the limit
    domain: environment
    event_type: air_quality
    metric: pm25
    raise_at: 50
    clear_at: 40
    quiet: 0s
    flap_window: 0s
    severity: {severity}
    category: environment
    subcategory: airPollution
    {TEXT}
"""
    if compound:
        text += f"""
  - id: no2-high
    kind: threshold
    title: NO2 above the limit
    domain: environment
    event_type: air_quality
    metric: no2
    raise_at: 200
    clear_at: 150
    quiet: 0s
    severity: high
    category: environment
    subcategory: airPollution
    {TEXT}
  - id: smog
    kind: correlation
    title: Smog
    conditions:
      - {{domain: environment, event_type: air_quality, metric: pm25, op: ">=", value: 50}}
      - {{domain: environment, event_type: air_quality, metric: no2, op: ">=", value: 200}}
    window: 30m
    quiet: 0s
    severity: critical
    category: environment
    subcategory: airPollution
    {TEXT}
"""
    return text


def paging_yaml(
    *, wait: str = "2s", interval: str = "4s", repeat: str = "1h", steps: str = "",
    storm: int = 1000, quiet: str = "",
) -> str:  # fmt: skip
    policy = "    policy: chain\n" if steps else ""
    return f"""
receivers:
  center: [{{secret: center}}]
  hook: [{{secret: hook}}]
people:
  an: {{name: "Trực ban An", contacts: [{{secret: an}}]}}
  binh: {{name: "Trưởng ca Bình", contacts: [{{secret: binh}}]}}
  chi: {{name: "Giám đốc Chi", contacts: [{{secret: chi}}]}}
grouping:
  group_wait: {wait}
  critical_group_wait: 0s
  group_interval: {interval}
  repeat_interval: {repeat}
routes:
  - name: all
    receivers: [center, hook]
{policy}storm:
  threshold: {storm}
  window: 1m
  wait: 2s
  receivers: [center]
{quiet}
oncall:
  timezone: Asia/Ho_Chi_Minh
  roles:
    duty_officer: {{people: [an]}}
    shift_lead: {{people: [binh]}}
    director: {{people: [chi]}}
policies:
  chain:
    steps:
{steps or "      - notify: duty_officer"}
"""


def reading(h: Harness, name: str, pm25: float, *, entity: str, t: datetime,
            where: dict[str, Any] = POINT, no2: float | None = None) -> Any:  # fmt: skip
    data = {"entity_id": entity, "location": where, "pm25": pm25}
    if no2 is not None:
        data["no2"] = no2
    return h.event(data, id=name, time=t)


@contextlib.asynccontextmanager
async def notifier(h: Harness, mail: MailServer, hook: WebhookServer, text: str,
                   poll: float = 0.05) -> AsyncIterator[Notifier]:  # fmt: skip
    """The notifier on the harness's database, sending to the local servers."""
    secrets = {name: mail.url(f"{name}@ioc.test") for name in ("center", "an", "binh", "chi")}
    secrets["hook"] = hook.url()
    paging = h.settings.paging.model_copy(
        update={
            "secrets": {k: SecretStr(v) for k, v in secrets.items()},
            "poll_interval_s": poll,
            "retry_first_s": 0.2,
            "retry_cap_s": 1.0,
        }
    )
    settings = h.settings.model_copy(update={"paging": paging})
    ctx = Context(parse_paging(text, "test-paging.yaml"), paging,
                  load_rule_files([("harness-rules.yaml", h.rules or "rules: []")]))  # fmt: skip
    running = Notifier(settings, ctx)
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        running.stop()
        await asyncio.wait_for(task, 10)


def rows(h: Harness, sql: str, *args: Any) -> list[dict[str, Any]]:
    with h.owner() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, args).fetchall()


async def test_forty_incidents_in_one_zone_make_one_page_and_a_later_one_one_more(
    settings: Settings, superuser: str
) -> None:
    now = datetime.now(UTC) - timedelta(seconds=5)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        with MailServer() as mail, WebhookServer() as hook:
            async with notifier(h, mail, hook, paging_yaml(wait="2s", interval="3s")):
                batch = [reading(h, f"e{n}", 60, entity=f"st-{n}", t=now) for n in range(40)]
                await h.handle("environment", batch)
                first = await mail.wait_for(lambda m: len(m) >= 1, timeout=10)
                await asyncio.sleep(1.5)  # nothing else comes within the group interval
                assert len(mail.to("center@ioc.test")) == 1, [m.subject for m in mail.mails]
                page = first[0]
                assert "40 sự cố / incidents" in page.subject
                assert page.body.count("* [cao / high] PM2.5 above the limit") == 40
                assert "dashboard: http://" in page.body and "ioc incidents ack" in page.body
                assert page.id.startswith("<") and page.id.endswith("@ioc-notifier>")
                # the webhook got the same page, with its notification id as Idempotency-Key
                assert len(hook.hooks) == 1 and hook.hooks[0].headers["Idempotency-Key"]

                await h.handle("environment", [reading(h, "late", 70, entity="st-late",
                                                       t=now + timedelta(seconds=1))])  # fmt: skip
                mails = await mail.wait_for(lambda m: len(m) >= 2, timeout=10)
                second = mails[1]
                written = [
                    r["created_at"]
                    for r in rows(
                        h,
                        "SELECT created_at FROM notifications WHERE receiver = 'center' ORDER BY 1",
                    )
                ]
                assert len(written) == 2
                assert written[1] - written[0] >= timedelta(seconds=3)  # not before group_interval
                assert "st-late" in second.body or "Mới / New (1)" in second.body
                assert "Vẫn đang diễn ra / Still open (40)" in second.body
                await asyncio.sleep(1.0)
                assert len(mail.to("center@ioc.test")) == 2
