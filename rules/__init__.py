"""Rules as data and the engine that turns events into incidents (pure: no I/O but reading rule
files, no Kafka, no database).

    from rules import RuleSet, load_rules
    ruleset = load_rules(settings.rules)          # shipped defaults + the city's directory
    outcome = evaluate(ruleset, observations, states)   # rules.engine

The state the engine reads and returns is plain data; streams/ reads and writes it in the same
database transaction as the batch's events (sinks.incidents).
"""

from rules.load import RuleError, RuleSet, load_rule_files, load_rules
from rules.model import Rule

__all__ = ["Rule", "RuleError", "RuleSet", "load_rule_files", "load_rules"]
