"""`ioc demo`'s account: one table of what the database and the DLQ topic hold; the simulator's
manifest, whose `stored` ignores the worker's late horizon, appears only as a labelled
expectation beside the counts that differ from it; and the pages the demo's SMTP server received,
with the verdict on them (one page for the scenario's incidents, exactly one escalation)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from localdev.accounting import Observed
from localdev.demo import DemoResult, summary_table
from localdev.demo_paging import ReceivedPage, page_verdict
from simulator.generate import Manifest

HORIZON_S = 3600.0


def manifest() -> Manifest:
    """Ten environment events: one bad JSON, one duplicate, and one sent two hours late, which
    the simulator counts as stored and the worker (horizon 1 h) dead-letters as too_late."""
    return Manifest(
        run={},
        sent=Counter(environment=10),
        outcomes={"environment": Counter({"stored": 8, "duplicate": 1, "dlq:bad_json": 1})},
        faults=[
            {"seq": 3, "domain": "environment", "fault": "late", "id": "a", "outcome": "stored",
             "reason": None, "lag_s": 7200.0},
            {"seq": 5, "domain": "environment", "fault": "bad_json", "id": "b", "outcome": "dlq",
             "reason": "bad_json"},
        ],
    )  # fmt: skip


def result(stored: int, dead: dict[str, int]) -> DemoResult:
    before = Observed(stored=Counter(environment=100))
    after = Observed(stored=Counter(environment=100 + stored))
    after.dead["environment"].update(dead)
    return DemoResult(manifest(), before, after, seconds=2.0, work=Path("/state/demo"))


def rendered(result: DemoResult) -> str:
    console = Console(record=True, width=240)
    console.print(summary_table(result, HORIZON_S))
    return console.export_text()


def test_the_demo_shows_the_database_and_says_it_matches_the_manifest() -> None:
    done = result(stored=7, dead={"bad_json": 1, "too_late": 1})
    assert done.complete(HORIZON_S)
    text = rendered(done)
    assert "counted in the database and the DLQ topic" in text
    (row,) = [line for line in text.splitlines() if line.startswith("│ environment")]
    assert [cell.strip() for cell in row.strip("│").split("│")][:5] == [
        "environment", "10", "7", "1", "bad_json 1, too_late 1",
    ]  # fmt: skip
    words = " ".join(text.split())  # the caption wraps
    assert "exactly as the simulator's manifest expects under the worker's late horizon" in words
    assert "expected by the simulator's manifest" not in text  # one table, one truth


def test_a_mismatch_shows_what_the_manifest_expected_beside_what_was_found() -> None:
    late_stored = result(stored=8, dead={"bad_json": 1})  # the late event was not refused
    assert late_stored.mismatched(HORIZON_S) == ["environment"]
    text = rendered(late_stored)
    words = " ".join(text.split())  # captions and titles wrap
    assert "MISMATCH with the simulator's manifest" in words
    assert "/state/demo" in words
    assert "expected by the simulator's manifest (late horizon 3,600 s)" in words
    (row,) = [line for line in text.splitlines() if "7 / 8" in line]
    assert "bad_json 1, too_late 1 / bad_json 1" in row


def test_a_wrong_dead_letter_reason_is_a_mismatch_too() -> None:
    wrong_reason = result(stored=7, dead={"bad_json": 1, "bad_location": 1})
    assert wrong_reason.mismatched(HORIZON_S) == ["environment"]
    assert "too_late 1 / bad_json 1, bad_location 1" in rendered(wrong_reason)


# -- the pages the demo's SMTP server received (localdev.demo_paging) -----------------------------

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FLOOD = {"compound", "rain-1", "rain-2", "crawl-1"}
CHAIN = ["duty_officer", "shift_lead", "director"]


def page(at_s: float, kind: str, incidents: set[str], role: str | None = None,
         zone: str | None = "22015") -> ReceivedPage:  # fmt: skip
    to = f"{role}@ioc.demo" if role else "center@ioc.demo"
    return ReceivedPage(T0 + timedelta(seconds=at_s), to, kind, role, zone, frozenset(incidents),
                        f"[{kind}] {len(incidents)} incidents")  # fmt: skip


def flood_pages() -> list[ReceivedPage]:
    return [
        page(0, "first", {"compound"}),
        page(0.1, "escalation", {"compound"}, "duty_officer"),
        page(5, "first", {"noise"}, zone="24163"),  # another zone's group: not the scenario's
        page(15, "escalation", {"compound"}, "shift_lead"),
        page(40, "update", {"compound"}),  # its resolution
    ]


MUTES = {"rain-1": "inhibited:c", "rain-2": "inhibited:c", "crawl-1": "", "compound": ""}


def test_one_page_and_one_escalation_pass_and_say_what_was_inhibited() -> None:
    ok, sentence = page_verdict(flood_pages(), "22015", FLOOD, MUTES, CHAIN)
    assert ok, sentence
    assert "ONE page (kind first) for the 4 incidents of the scenario in zone 22015" in sentence
    assert "it lists 1; 2 are muted by inhibition" in sentence
    assert "1 cleared before the group's next page" in sentence
    assert "escalated exactly once: to shift_lead, 15 s later; director was not paged" in sentence


def test_a_second_announcing_page_a_storm_or_another_escalation_fail() -> None:
    pages = flood_pages()
    twice = [*pages, page(50, "update", {"compound", "crawl-1"})]
    ok, sentence = page_verdict(twice, "22015", FLOOD, MUTES, CHAIN)
    assert not ok and "2 pages announced the scenario's incidents, not one" in sentence
    director = [*pages, page(60, "escalation", {"compound"}, "director")]
    ok, sentence = page_verdict(director, "22015", FLOOD, MUTES, CHAIN)
    assert not ok
    assert "paged duty_officer, shift_lead, director, not duty_officer then shift_lead" in sentence
    acknowledged = [p for p in pages if p.role != "shift_lead"]
    assert not page_verdict(acknowledged, "22015", FLOOD, MUTES, CHAIN)[0]
    storm = [page(0, "storm", FLOOD, zone=None), *pages[1:]]
    ok, sentence = page_verdict(storm, "22015", FLOOD, MUTES, CHAIN)
    assert not ok and "1 storm page(s)" in sentence


def test_the_summary_shows_the_received_pages_under_the_incidents() -> None:
    done = result(stored=7, dead={"bad_json": 1, "too_late": 1})
    done.manifest.run["scenario"] = {"name": "flood", "zone_id": "22015"}
    done.incidents = []
    done.pages, done.chain, done.paging_since = flood_pages(), tuple(CHAIN), T0
    text = rendered(done)
    words = " ".join(text.split())
    assert "pages received by the demo's SMTP server" in words
    (row,) = [line for line in text.splitlines() if "shift_lead@ioc.demo" in line]
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells[:6] == ["10:00:15", "15.0", "shift_lead@ioc.demo", "escalation: shift_lead",
                         "22015", "1"]  # fmt: skip
    assert done.paging() is not None
    # no scenario incident in this run's database: the verdict is a mismatch, and the demo fails
    assert not done.paging_ok()
    assert "PAGING MISMATCH for zone 22015" in words


def test_the_link_verdict_needs_a_shown_page_a_press_and_a_stopped_chain() -> None:
    from datetime import UTC, datetime

    from localdev.demo_paging import LinkAck, link_verdict

    now = datetime.now(UTC)
    good = LinkAck(now, "lead_a", "0b7c0000-0000-0000-0000-000000000000", True, True,
                   "Đã xác nhận: lead_a", True)  # fmt: skip
    ok, sentence = link_verdict(good, "shift_lead")
    assert ok and "lead_a (shift_lead)" in sentence and "chain stopped" in sentence
    assert link_verdict(None, "shift_lead")[0] is False
    for broken in (
        LinkAck(now, "lead_a", "x", False, True, "", True),  # the GET changed something
        LinkAck(now, "", "x", True, False, "Liên kết đã được dùng", False),  # refused
        LinkAck(now, "lead_a", "x", True, True, "", False),  # the chain went on
    ):
        ok, sentence = link_verdict(broken, "shift_lead")
        assert not ok and sentence.startswith("LINK MISMATCH")
