"""`ioc demo`'s account: one table of what the database and the DLQ topic hold; the simulator's
manifest, whose `stored` ignores the worker's late horizon, appears only as a labelled
expectation beside the counts that differ from it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console

from localdev.accounting import Observed
from localdev.demo import DemoResult, summary_table
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
