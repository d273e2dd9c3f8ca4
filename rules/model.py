"""Rules as data: the seven kinds, validated by pydantic when the YAML is loaded.

A rule file is YAML with a top-level `rules:` list; each item has an `id`, a `kind` and the
fields of that kind. Durations are `30s`, `5m`, `2h`, `1d` or a number of seconds. Every rule
says how bad (`severity`), what (`category`, `subcategory`: the vocabulary of the FIWARE Smart
Data Model `Alert`) and how to describe it (`description.vi`, `description.en`: templates with
`{zone}`, `{entity}`, `{value}`, `{peak}`, `{count}`, `{metric}`, `{raise_at}`, `{clear_at}`,
and the incident's triggering values: a baseline's `{expected}` (the row's mean) and `{upper}`).

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
- baseline: a metric against a seasonal baseline given as data in the rule (the endemic channel
  of disease surveillance): a table of `mean` and `sd` per month of the year or per ISO week
  (`period`), in the rule's IANA `timezone`. It raises when the value exceeds
  `mean + raise_sd * sd` (and is at least `min_value`) for `for`, and clears under
  `mean + clear_sd * sd` (hysteresis). The event's local time picks the row; ISO week 53 uses
  week 52's row unless the table has its own; a missing row uses `default`.
- count: at least `raise_at` matching events per key (the zone by default) within a sliding
  event-time `window` (an event counts from its time t until t + window); it clears once the
  count in the window has fallen to `clear_at`. Its `{value}` is the count in the window (at
  most `raise_at`); its incident's `count` is the number of events that kept it raised. The
  key's state is the newest `raise_at` event
  times (epoch milliseconds), all within the window: bounded, and enough to decide both levels.
  The moment the count fell to `clear_at` is known from those times, so the resolution is
  dated exactly (that moment + `quiet`) even when the key's next event comes much later; it is
  written when the key's next event arrives. An event older than its key's newest is late (as
  for every kind but correlation) and is not counted.
Every kind auto-resolves an incident once its clear condition has held for `quiet`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

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


class Band(BaseModel):
    """One row of a baseline: the usual value and its spread (for example, the mean and the
    standard deviation of the same month in the past five years)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float = Field(allow_inf_nan=False)
    sd: float = Field(ge=0, allow_inf_nan=False)


_PERIODS = {"month": range(1, 13), "iso_week": range(1, 53)}  # week 53 is optional


class Baseline(RuleBase):
    kind: Literal["baseline"]
    metric: str = Field(min_length=1)
    timezone: str = Field(description="IANA name; the event's local time picks the row.")
    period: Literal["month", "iso_week"] = "month"
    raise_sd: float = Field(2.0, gt=0, allow_inf_nan=False, description="k in mean + k * sd")
    clear_sd: float = Field(1.0, allow_inf_nan=False, description="Clears under mean + this * sd")
    min_value: float = Field(
        0.0, allow_inf_nan=False, description="Raises only at this value or more too."
    )
    for_: Duration = Field(timedelta(0), alias="for")
    key: Literal["entity", "zone"] = "entity"
    default: Band | None = Field(None, description="The row of periods the table leaves out.")
    baseline: dict[int, Band] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not an IANA time zone: {value!r}") from None
        return value

    @field_validator("baseline")
    @classmethod
    def _every_period(cls, table: dict[int, Band], info: ValidationInfo) -> dict[int, Band]:
        period = info.data.get("period", "month")
        wanted = _PERIODS[period]
        last = wanted.stop if period == "iso_week" else wanted.stop - 1  # week 53 may be given
        outside = sorted(p for p in table if not 1 <= p <= last)
        if outside:
            raise ValueError(f"no {period} {outside} (a {period} is 1..{last})")
        missing = [p for p in wanted if p not in table]
        if missing and info.data.get("default") is None:
            raise ValueError(f"no row for {period} {missing}: give each one, or a `default`")
        return table

    @field_validator("clear_sd")
    @classmethod
    def _hysteresis(cls, value: float, info: ValidationInfo) -> float:
        raise_sd = info.data.get("raise_sd")
        if raise_sd is not None and value > raise_sd:
            raise ValueError(f"clear_sd ({value}) must not exceed raise_sd ({raise_sd})")
        return value

    @cached_property
    def zone_info(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def band(self, at: datetime) -> Band:
        """The baseline row for an (aware) event time, in the rule's time zone."""
        local = at.astimezone(self.zone_info)
        if self.period == "month":
            index = local.month
        else:
            index = local.isocalendar().week
            if index == 53 and 53 not in self.baseline:
                index = 52
        row = self.baseline.get(index, self.default)
        assert row is not None  # every period has a row or the default (validated)
        return row

    def upper(self, at: datetime) -> float:
        band = self.band(at)
        return band.mean + self.raise_sd * band.sd

    def lower(self, at: datetime) -> float:
        band = self.band(at)
        return band.mean + self.clear_sd * band.sd

    @property
    def key_kind(self) -> str:
        return self.key


MAX_COUNT = 1000  # a count rule's `raise_at`: the event times kept per key


class Count(RuleBase):
    kind: Literal["count"]
    window: Duration
    raise_at: int = Field(ge=1, le=MAX_COUNT, description="At least this many events raise.")
    clear_at: int = Field(ge=0, description="Clears when the window holds this many or fewer.")
    key: Literal["zone", "entity", "source"] = "zone"

    @field_validator("window")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("window must be positive")
        return value

    @field_validator("clear_at")
    @classmethod
    def _hysteresis(cls, value: int, info: ValidationInfo) -> int:
        raise_at = info.data.get("raise_at")
        if raise_at is not None and value >= raise_at:
            raise ValueError(f"clear_at ({value}) must be under raise_at ({raise_at})")
        return value

    @cached_property
    def window_ms(self) -> int:
        return math.ceil(self.window.total_seconds() * 1000)

    @property
    def key_kind(self) -> str:
        return self.key


Rule = Annotated[
    Threshold | RateOfChange | Silence | Geofence | Correlation | Baseline | Count,
    Field(discriminator="kind"),
]
#: The `kind` of each rule class, as rule files name it.
KINDS: tuple[str, ...] = (
    "threshold", "rate_of_change", "silence", "geofence", "correlation", "baseline", "count",
)  # fmt: skip


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
