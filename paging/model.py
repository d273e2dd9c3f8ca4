"""The paging file: receivers, routes, grouping, the storm page, quiet hours, on-call and escalation.

One YAML document, validated by pydantic when it is loaded; an error names the file and the
field. Its sections:

- `receivers`: name -> list of `{secret: NAME}`. Each secret's value is an apprise URL
  (mailto://, json://, tgram://, slack://, ...) supplied by Settings
  (IOC_PAGING__SECRETS__NAME): no URL, token or password is ever in the file.
- `people`: id -> name and contacts (secret names, like receivers).
- `grouping`: the defaults of every route: `group_by` labels (zone, domain, severity, rule),
  `group_wait` (30s), `critical_group_wait` (0s: a critical incident's first page leaves at
  once, and the incidents that follow join its group), `group_interval` (5m: the least time
  between two pages of one group), `repeat_interval` (4h: a reminder while it stays open).
- `routes`: tried in order, the first whose `match` fits an incident takes it. `match` lists
  allowed values of domain, severity, zone and rule (a missing key matches anything). A route
  names its receivers, may override the grouping and may name an escalation `policy`. The last
  route must match everything, so no incident goes unrouted.
- `storm`: more than `threshold` new incidents city-wide within `window` turn the burst into one
  storm page to `receivers` (and `policy`), instead of a page per group.
- `quiet_hours`: pages of the listed severities (never critical) that fall between `start` and
  `end` in `timezone` wait until `end`.
- `oncall`: `timezone` and, per role (duty_officer, shift_lead, director, or any name), a rotation:
  `people` take turns in shifts of `shift` length, handing over at `handover` local time from
  `start` (a date).
- `policies`: name -> `steps`, each `{notify: ROLE}` or `{wait: DURATION}`, and `repeat` (how many
  times the steps run again while nobody acknowledges). An acknowledgement stops the chain.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rules.model import Duration, Severity

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Label = Literal["zone", "domain", "severity", "rule"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    secret: Name = Field(description="The name of a secret in IOC_PAGING__SECRETS.")


class Person(_Strict):
    name: str = Field(min_length=1, max_length=120)
    contacts: list[SecretRef] = Field(min_length=1)


class Grouping(_Strict):
    group_by: list[Label] = Field(default_factory=lambda: ["zone", "domain"])
    group_wait: Duration = timedelta(seconds=30)
    critical_group_wait: Duration = timedelta(0)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=4)

    @model_validator(mode="after")
    def _sane(self) -> Grouping:
        if self.group_interval <= timedelta(0) or self.repeat_interval <= timedelta(0):
            raise ValueError("group_interval and repeat_interval must be positive")
        if self.repeat_interval < self.group_interval:
            raise ValueError("repeat_interval must not be shorter than group_interval")
        return self


class GroupingOverride(_Strict):
    group_by: list[Label] | None = None
    group_wait: Duration | None = None
    critical_group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None


class RouteMatch(_Strict):
    domain: list[str] | None = None
    severity: list[Severity] | None = None
    zone: list[str] | None = None
    rule: list[str] | None = None

    def fits(self, labels: dict[str, str | None]) -> bool:
        for key in ("domain", "severity", "zone", "rule"):
            allowed = getattr(self, key)
            if allowed is not None and labels.get(key) not in allowed:
                return False
        return True

    @property
    def everything(self) -> bool:
        return all(getattr(self, k) is None for k in ("domain", "severity", "zone", "rule"))


class Route(_Strict):
    name: Name
    match: RouteMatch = RouteMatch()
    receivers: list[Name] = Field(min_length=1)
    policy: Name | None = None
    grouping: GroupingOverride = GroupingOverride()


class Storm(_Strict):
    threshold: int = Field(20, ge=1, description="More new incidents than this within `window`.")
    window: Duration = timedelta(minutes=1)
    wait: Duration = Field(
        timedelta(seconds=10),
        description="How long the storm page waits for the rest of the burst.",
    )
    receivers: list[Name] = Field(min_length=1)
    policy: Name | None = None


class QuietHours(_Strict):
    start: time
    end: time
    severities: list[Severity] = Field(default_factory=lambda: ["informational", "low"])

    @model_validator(mode="after")
    def _never_critical(self) -> QuietHours:
        if "critical" in self.severities:
            raise ValueError("quiet hours never apply to critical incidents")
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class Rotation(_Strict):
    people: list[Name] = Field(min_length=1)
    shift: Duration = timedelta(hours=12)
    handover: time = time(7, 0)
    start: date = date(2026, 1, 1)

    @model_validator(mode="after")
    def _positive(self) -> Rotation:
        if self.shift < timedelta(minutes=1):
            raise ValueError("shift must be at least 1m")
        return self


class OnCall(_Strict):
    timezone: str = "Asia/Ho_Chi_Minh"
    roles: dict[Name, Rotation] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _zone(self) -> OnCall:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self


class Notify(_Strict):
    notify: Name


class Wait(_Strict):
    wait: Duration

    @model_validator(mode="after")
    def _positive(self) -> Wait:
        if self.wait <= timedelta(0):
            raise ValueError("wait must be positive")
        return self


class Policy(_Strict):
    steps: list[Notify | Wait] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=10, description="Run the steps again this many times.")


class PagingConfig(_Strict):
    receivers: dict[Name, list[SecretRef]] = Field(min_length=1)
    people: dict[Name, Person] = Field(default_factory=dict)
    grouping: Grouping = Grouping()
    routes: list[Route] = Field(min_length=1)
    storm: Storm | None = None
    quiet_hours: QuietHours | None = None
    oncall: OnCall = OnCall()
    policies: dict[Name, Policy] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> PagingConfig:
        problems: list[str] = []
        names = [route.name for route in self.routes]
        if len(set(names)) != len(names):
            problems.append("routes: two routes share a name")
        if not self.routes[-1].match.everything:
            problems.append(f"routes: the last route ({self.routes[-1].name}) must match "
                            "everything (no `match`), so that no incident goes unrouted")  # fmt: skip
        for where, receivers, policy in [
            *((f"routes.{r.name}", r.receivers, r.policy) for r in self.routes),
            *([("storm", self.storm.receivers, self.storm.policy)] if self.storm else []),
        ]:
            problems += [f"{where}.receivers: no receiver {name!r}"
                         for name in receivers if name not in self.receivers]  # fmt: skip
            if policy is not None and policy not in self.policies:
                problems.append(f"{where}.policy: no policy {policy!r}")
        for role, rotation in self.oncall.roles.items():
            problems += [f"oncall.roles.{role}.people: no person {p!r}"
                         for p in rotation.people if p not in self.people]  # fmt: skip
        for name, policy in self.policies.items():
            for index, step in enumerate(policy.steps):
                if isinstance(step, Notify) and step.notify not in self.oncall.roles:
                    problems.append(f"policies.{name}.steps.{index}.notify: no on-call role "
                                    f"{step.notify!r}")  # fmt: skip
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def secret_names(self) -> set[str]:
        """Every secret the file names (receivers and people's contacts)."""
        refs = [ref for refs in self.receivers.values() for ref in refs]
        refs += [ref for person in self.people.values() for ref in person.contacts]
        return {ref.secret for ref in refs}

    def grouping_of(self, route: Route) -> Grouping:
        """The route's grouping: the file's defaults with the route's overrides."""
        changes = {k: v for k, v in route.grouping.model_dump().items() if v is not None}
        return self.grouping.model_copy(update=changes)

    def route_for(self, labels: dict[str, str | None]) -> Route:
        return next(route for route in self.routes if route.match.fits(labels))

    def route_named(self, name: str) -> Route | None:
        return next((route for route in self.routes if route.name == name), None)
