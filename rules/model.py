"""Rules as data: the five kinds, validated by pydantic when the YAML is loaded.

A rule file is YAML with a top-level `rules:` list; each item has an `id`, a `kind` and the
fields of that kind. Durations are `30s`, `5m`, `2h`, `1d` or a number of seconds. Every rule
says how bad (`severity`), what (`category`, `subcategory`: the vocabulary of the FIWARE Smart
Data Model `Alert`) and how to describe it (`description.vi`, `description.en`: templates with
`{zone}`, `{entity}`, `{value}`, `{peak}`, `{count}`, `{metric}`, `{raise_at}`, `{clear_at}`).

Kinds (each evaluated on event time, per key, by rules.engine):
- threshold: a metric crosses `raise_at` (above or below) for at least `for`; it clears at
  `clear_at` (hysteresis: the band between the two levels neither raises nor clears).
- rate_of_change: a metric changes by at least `change` (a negative change: a drop) within
  `window`; it clears when the change over the window is back under `clear_change`.
- silence: no event from an entity (or a source) for `after`, measured against the newest event
  time stored for its source; it clears when the entity reports again.
- geofence: an event inside (or outside) the listed zones; it clears on the next event from the
  entity on the allowed side.
- correlation: every one of `conditions` (each from its own domain) matched in the same zone
  within `window`; one compound incident per zone; it clears when they no longer all hold.
Every kind auto-resolves an incident once its clear condition has held for `quiet`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> timedelta:
    """`30s`, `5m`, `2h`, `1d`, `250ms`, or a number of seconds, as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use 30s, 5m, 2h, 1d or seconds)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Severity = Literal["informational", "low", "medium", "high", "critical"]
#: FIWARE Alert `category` values.
Category = Literal[
    "traffic", "naturalDisaster", "weather", "environment", "health", "security",
    "agriculture", "water", "anomaly", "facility", "planning",
]  # fmt: skip
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,79}$")]


class Text(BaseModel):
    """A description in Vietnamese and English; placeholders in braces (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vi: str = Field(min_length=1, max_length=500)
    en: str = Field(min_length=1, max_length=500)


class Match(BaseModel):
    """Which events a rule (or a correlation condition) looks at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str = Field(min_length=1)
    event_type: str | None = Field(
        None, description="The event type's short name (e.g. air_quality), any version."
    )
    where: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Fields of the event's data that must be equal."
    )


class RuleBase(Match):
    id: RuleId
    title: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    severity: Severity
    category: Category
    subcategory: str = Field(min_length=1, max_length=80)
    description: Text
    quiet: Duration = Field(
        timedelta(minutes=5), description="The clear condition must hold this long to resolve."
    )
    flap_window: Duration = Field(
        timedelta(minutes=30), description="Re-opening within this long after a resolve flaps."
    )
    source: str | None = Field(None, description="Where the level comes from (a standard...).")
    reason: str | None = Field(None, description="Why the rule exists, in one line.")

    @property
    def key_kind(self) -> str:
        return "entity"


class Threshold(RuleBase):
    kind: Literal["threshold"]
    metric: str = Field(min_length=1)
    direction: Literal["above", "below"] = "above"
    raise_at: float
    clear_at: float
    for_: Duration = Field(timedelta(0), alias="for")
    key: Literal["entity", "zone"] = "entity"

    @model_validator(mode="after")
    def _hysteresis(self) -> Threshold:
        if self.direction == "above" and self.clear_at > self.raise_at:
            raise ValueError(
                f"clear_at ({self.clear_at}) must not exceed raise_at ({self.raise_at})"
            )
        if self.direction == "below" and self.clear_at < self.raise_at:
            raise ValueError(
                f"clear_at ({self.clear_at}) must not be under raise_at ({self.raise_at})"
            )
        return self

    def breaches(self, value: float) -> bool:
        return value >= self.raise_at if self.direction == "above" else value <= self.raise_at

    def clears(self, value: float) -> bool:
        return value < self.clear_at if self.direction == "above" else value > self.clear_at

    @property
    def key_kind(self) -> str:
        return self.key


class RateOfChange(RuleBase):
    kind: Literal["rate_of_change"]
    metric: str = Field(min_length=1)
    window: Duration
    change: float = Field(description="The change within `window` that raises; < 0 is a drop.")
    clear_change: float | None = Field(None, description="Default: half of `change`.")

    @model_validator(mode="after")
    def _nonzero(self) -> RateOfChange:
        if self.change == 0:
            raise ValueError("change must not be 0")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")
        return self

    @property
    def clear_level(self) -> float:
        return self.change / 2 if self.clear_change is None else self.clear_change


class Silence(RuleBase):
    kind: Literal["silence"]
    after: Duration
    key: Literal["entity", "source"] = "entity"

    @property
    def key_kind(self) -> str:
        return self.key


class Geofence(RuleBase):
    kind: Literal["geofence"]
    zones: list[str] = Field(min_length=1)
    when: Literal["inside", "outside"] = "inside"


class Condition(Match):
    metric: str | None = None
    op: Literal[">", ">=", "<", "<=", "=="] | None = None
    value: float | None = None

    @model_validator(mode="after")
    def _complete(self) -> Condition:
        if (self.metric is None) != (self.op is None) or (self.op is None) != (self.value is None):
            raise ValueError("metric, op and value go together")
        return self


class Correlation(RuleBase):
    kind: Literal["correlation"]
    domain: str = "*"  # conditions name their own domains
    conditions: list[Condition] = Field(min_length=2)
    window: Duration

    @property
    def key_kind(self) -> str:
        return "zone"


Rule = Annotated[
    Threshold | RateOfChange | Silence | Geofence | Correlation, Field(discriminator="kind")
]


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
