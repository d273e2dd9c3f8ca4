"""`ioc demo`'s page check on real components: the demo's paging file (scaled to a 12-s run) in
the notifier, the demo's own SMTP server (localdev.mail, aiosmtpd), the real pipeline opening a
compound incident and its constituents in one zone; then the demo's reading of what the server
received (localdev.demo_paging) and its verdict."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from localdev.demo_paging import ADDRESSES, demo_paging, muted, page_verdict, received_pages
from localdev.mail import MailServer
from localdev.runtime import LocalPostgres
from notifier.core import Context
from notifier.service import Notifier
from paging.model import Notify
from rules import load_rule_files
from streams.settings import Settings
from tests.integration.test_paging import reading, rules
from tests.support.harness import pipeline_harness

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


async def test_the_demo_sees_one_page_for_a_compound_and_exactly_one_escalation(
    settings: Settings, superuser: str
) -> None:
    _text, config = demo_paging(12)  # group_wait 3 s, critical 0 s, the shift lead after 3 s
    chain = [s.notify for s in config.policies["demo"].steps if isinstance(s, Notify)]
    now = datetime.now(UTC) - timedelta(seconds=5)
    async with pipeline_harness(settings, superuser, rules=rules(compound=True)) as h:
        with MailServer() as mail:
            paging = h.settings.paging.model_copy(
                update={
                    "secrets": {k: SecretStr(mail.url(v)) for k, v in ADDRESSES.items()},
                    "poll_interval_s": 0.05,
                }
            )
            ctx = Context(config, paging, load_rule_files([("harness-rules.yaml", h.rules or "")]))
            running = Notifier(h.settings.model_copy(update={"paging": paging}), ctx)
            task = asyncio.create_task(running.run())
            try:
                # pm25 and no2 over their limits at one station: two incidents and the compound
                # "smog" (critical) that groups them, in one zone
                await h.handle("environment", [reading(h, "a", 60, entity="st-1", t=now, no2=250)])
                for _ in range(300):  # the notifier runs on this loop: wait without blocking it
                    if len(mail.mails) >= 3:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # nothing else within the test's run
            finally:
                running.stop()
                await asyncio.wait_for(task, 10)
        incidents = h.incidents()
        zone = incidents[0]["zone_id"]
        ids = {str(i["id"]) for i in incidents}
        assert len(ids) == 3
        pages = received_pages(h.settings, mail.mails)
        verdict, sentence = page_verdict(pages, zone, ids, muted(h.settings, sorted(ids)), chain)

    # the page and the duty officer's are sent together, in either order
    assert sorted((p.kind, p.role, p.to) for p in pages[:2]) == [
        ("escalation", "duty_officer", "duty-officer@ioc.demo"),
        ("first", None, "center@ioc.demo"),
    ]
    assert [(p.kind, p.role, p.to) for p in pages[2:]] == [
        ("escalation", "shift_lead", "shift-lead@ioc.demo")
    ]
    (first,) = [p for p in pages if p.kind == "first"]
    assert "Smog" in first.subject and len(first.incidents) == 1
    # the scaled 15-s wait is 3 s from the page's creation; arrival times carry the first
    # delivery's own delay (a new SMTP connection)
    assert 1.5 <= (pages[2].at - first.at).total_seconds() <= 5
    assert verdict, sentence
    assert "it lists 1; 2 are muted by inhibition" in sentence
    assert "escalated exactly once: to shift_lead" in sentence
    # the same mails, had the chain stopped at the duty officer, are not what the demo claims
    assert page_verdict(pages[:2], zone, ids, {}, chain)[0] is False
