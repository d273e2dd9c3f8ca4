"""The shipped default rules: every one loads, names a source or states its reason, rules only on
metrics its domain's event type emits, and the compound rules name conditions that exist."""

from __future__ import annotations

from domains import Registry
from rules.load import default_rule_files, load_rule_files
from rules.model import Correlation, Match, RateOfChange, Threshold

RULES = load_rule_files(default_rule_files())
REGISTRY = Registry()


def metrics_of(match: Match) -> set[str]:
    return {
        m.name
        for t in REGISTRY
        if t.domain == match.domain and t.model.spec.name == match.event_type
        for m in t.model.spec.measures
    }


def test_every_default_rule_loads_with_a_source_and_a_reason() -> None:
    files = {name for name, _ in default_rule_files()}
    assert {f"rules/defaults/{d}.yaml" for d in REGISTRY.domains()} <= files  # one per domain
    assert len(RULES) >= 20
    for rule in RULES:
        assert rule.source and rule.reason, rule.id
        assert rule.enabled, rule.id


def test_rules_use_metrics_their_event_types_emit() -> None:
    for rule in RULES:
        if isinstance(rule, Threshold | RateOfChange):
            assert rule.metric in metrics_of(rule), (rule.id, rule.metric)
        if isinstance(rule, Correlation):
            domains = {c.domain for c in rule.conditions}
            assert len(domains) >= 2, rule.id
            for condition in rule.conditions:
                assert condition.metric in metrics_of(condition), (rule.id, condition)


def test_the_compound_rules_of_the_issue_are_shipped() -> None:
    ids = {rule.id for rule in RULES}
    assert {
        "compound.flood-impact", "compound.crowd-health-risk", "compound.coastal-storm-impact"
    } <= ids  # fmt: skip
    assert RULES.by_id("compound.flood-impact").window.total_seconds() == 1800  # type: ignore[union-attr]
