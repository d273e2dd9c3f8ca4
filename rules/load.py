"""Reading rule files: YAML validated by rules.model, errors that name the file, rule and field."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from rules.config import RulesSettings
from rules.model import KINDS, Rule

_RULE = TypeAdapter(Rule)


class RuleError(Exception):
    """Invalid rule files; `problems` has one line per problem: file, rule, field, what."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RuleSet:
    """The active rules, by id, with the file each came from."""

    rules: tuple[Rule, ...] = ()
    origin: dict[str, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def by_id(self, rule_id: str) -> Rule:
        """The rule with this id; KeyError if there is none. A dict lookup: the engine asks
        once per (rule, key) of every batch."""
        return self._by_id[rule_id]

    @cached_property
    def _by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}

    @cached_property
    def by_domain(self) -> dict[str, tuple[Rule, ...]]:
        """The rules that may look at an event of each domain (a correlation under each of its
        conditions' domains; "*" for rules of any domain)."""
        found: dict[str, list[Rule]] = {}
        for rule in self.rules:
            conditions = getattr(rule, "conditions", None)
            domains = {c.domain for c in conditions} if conditions else {rule.domain}
            for domain in sorted(domains):
                found.setdefault(domain, []).append(rule)
        return {domain: tuple(rules) for domain, rules in found.items()}

    @cached_property
    def memo(self) -> dict[str, Any]:
        """What the engine works out once per rule set (the rules that look at each event
        type), kept here so that it lives as long as the rules it came from."""
        return {}

    def enabled(self) -> RuleSet:
        return RuleSet(tuple(r for r in self.rules if r.enabled), self.origin)


def _field_path(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in KINDS:  # the discriminator's tag that pydantic puts first
        parts = parts[1:]
    return ".".join(parts) or "(rule)"


def parse_rule_file(text: str, name: str) -> tuple[list[Rule], list[str]]:
    """The rules of one file and the problems found (each naming the file, rule and field)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [], [f"{name}: not YAML: {exc}"]
    if document is None:
        return [], []
    if not isinstance(document, dict) or set(document) != {"rules"}:
        return [], [f"{name}: expected a mapping with one key, `rules` (a list)"]
    items = document["rules"] or []
    if not isinstance(items, list):
        return [], [f"{name}: `rules` must be a list"]
    rules: list[Rule] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        label = (
            f"rule {item.get('id')!r}"
            if isinstance(item, dict) and item.get("id")
            else f"rule #{index + 1}"
        )
        try:
            rules.append(_RULE.validate_python(item))
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(f"{name}: {label}: {_field_path(err['loc'])}: {err['msg']}")
    return rules, problems


def load_rule_files(paths: Iterable[Path | tuple[str, str]]) -> RuleSet:
    """Rules from files (a Path, or (name, text)); a later file's rule replaces an earlier one
    of the same id; two rules with one id in the same file is an error. Raises RuleError."""
    by_id: dict[str, Rule] = {}
    origin: dict[str, str] = {}
    problems: list[str] = []
    for path in paths:
        name, text = (str(path), path.read_text()) if isinstance(path, Path) else path
        rules, found = parse_rule_file(text, name)
        problems += found
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                problems.append(f"{name}: rule {rule.id!r}: id: used twice in this file")
            seen.add(rule.id)
            by_id[rule.id] = rule
            origin[rule.id] = name
    if problems:
        raise RuleError(problems)
    return RuleSet(tuple(by_id.values()), origin)


def default_rule_files() -> list[tuple[str, str]]:
    """The rule files shipped in rules/defaults/, as (name, text), sorted by name."""
    folder = resources.files("rules") / "defaults"
    if not folder.is_dir():
        return []
    return [
        (f"rules/defaults/{entry.name}", entry.read_text())
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith((".yaml", ".yml"))
    ]


def directory_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise RuleError([f"{directory}: not a directory (IOC_RULES__DIR)"])
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_rules(settings: RulesSettings) -> RuleSet:
    """The shipped defaults (unless turned off), then the city's directory. Raises RuleError."""
    files: list[Path | tuple[str, str]] = []
    if settings.defaults:
        files += default_rule_files()
    if settings.dir is not None:
        files += directory_files(settings.dir)
    return load_rule_files(files)
