"""The rule engine: observations + prior state -> new state + incident changes. Pure and
deterministic: the same observations in the same batches give the same incidents.

Per batch, in two steps, so that the caller can lock exactly the state rows it needs:

    plan = group(ruleset, observations)         # {(rule id, key): [observations, by time]}
    states = <read those keys' rows FOR UPDATE>  # {(rule id, key): dict}, missing = new
    outcome = apply(ruleset, plan, states)       # new states, incident snapshots, history

Time is event time throughout. Each key's observations are applied in event-time order. An
observation older than the newest already applied for its key (in an earlier batch) is counted as
`late_for_rule` and changes nothing: the allowed lateness is one batch. Correlation rules are
the exception: fed by several domains' agents, they take each condition at its own event time
(see `_correlation`). Count rules keep the contract: their window holds
the events applied in order, so an event older than its key's newest (a call from another
partition, one batch late) is counted as `late_for_rule` and left out of the window.

An incident is a snapshot dict kept inside its key's state while it is open (see `Incident`);
its id derives from (rule, key, event time of opening), so a replay opens the same ids. A breach
after resolution opens a new incident linked to the previous one (`previous`); re-opening within
the rule's flap window sets `flapping` and counts it. A person who resolves an incident while its
condition still holds sets `held` on the state (sinks.incidents does it): the rule then opens
nothing until the condition has cleared and been raised again.
"""

from __future__ import annotations

import bisect
import functools
import operator
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from rules.load import RuleSet
from rules.model import (
    Baseline,
    Condition,
    Correlation,
    Count,
    Geofence,
    Match,
    RateOfChange,
    Rule,
    Silence,
    Threshold,
)

INCIDENT_NAMESPACE = uuid.UUID("5b7f4c1e-9f0e-4a55-8a57-6c1d2f3e4a10")
#: Which transition a batch's change of an incident is, most significant first.
TRANSITIONS = ("opened", "resolved", "updated")


@dataclass(slots=True)
class Observation:
    """What the rules see of one newly stored event."""

    time: datetime
    domain: str
    type_name: str  # the event type's short name (air_quality), any version
    source: str
    entity_id: str
    zone_id: str | None
    values: Mapping[str, float]  # metric -> value (the event's measurements)
    data_json: str = "{}"
    _data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            parsed = orjson.loads(self.data_json) if self.data_json else {}
            self._data = parsed if isinstance(parsed, dict) else {}
        return self._data


def type_name(type_string: str) -> str:
    """An event type's short name, as rules name it: `vn.daklak.environment.air_quality.v1` ->
    `air_quality` (any version)."""
    parts = type_string.rsplit(".", 2)
    return parts[-2] if len(parts) == 3 else type_string


def incident_id(rule_id: str, key: str, opened_at: datetime) -> str:
    return str(uuid.uuid5(INCIDENT_NAMESPACE, f"{rule_id}|{key}|{opened_at.isoformat()}"))


@dataclass(frozen=True, slots=True)
class _Target:
    """A rule that may look at events of one (domain, event type): what is left to check on
    each event once the domain and the type are known."""

    rule: Rule
    correlation: bool
    where: tuple[Match, ...]  # each must hold (a correlation: any; empty: always)
    metric: str | None  # the measurement the event must carry
    key_kind: str


def _targets(ruleset: RuleSet, domain: str, type_name: str) -> tuple[_Target, ...]:
    out: list[_Target] = []
    candidates = (*ruleset.by_domain.get(domain, ()), *ruleset.by_domain.get("*", ()))
    for rule in {rule.id: rule for rule in candidates}.values():  # once each, in rule order
        if isinstance(rule, Correlation):
            fitting = [c for c in rule.conditions if _fits(c, domain, type_name)]
            if fitting:
                always = any(not c.where for c in fitting)
                out.append(_Target(rule, True, () if always else tuple(fitting), None, "zone"))
            continue
        if not _fits(rule, domain, type_name):
            continue
        metric = rule.metric if isinstance(rule, Threshold | RateOfChange | Baseline) else None
        where = (rule,) if rule.where else ()
        out.append(_Target(rule, False, where, metric, rule.key_kind))
    return tuple(out)


def _fits(match: Match, domain: str, type_name: str) -> bool:
    """Whether a rule or a condition looks at events of this domain and type (its `where`, on
    the event's data, is checked per event by `_where`)."""
    return match.domain in ("*", domain) and match.event_type in (None, type_name)


def targets(ruleset: RuleSet, domain: str, type_name: str) -> tuple[_Target, ...]:
    """The rules that may look at an event of this domain and type (worked out once per rule
    set and type)."""
    routes: dict[tuple[str, str], tuple[_Target, ...]] = ruleset.memo.setdefault("targets", {})
    found = routes.get((domain, type_name))
    if found is None:
        found = routes[domain, type_name] = _targets(ruleset, domain, type_name)
    return found


def _where(match: Match, obs: Observation) -> bool:
    data = obs.data
    return all(data.get(name) == want for name, want in match.where.items())


def group(
    ruleset: RuleSet, observations: Sequence[Observation]
) -> dict[tuple[str, str], list[Observation]]:
    """The observations each (rule, key) must see, in event-time order (stable for ties)."""
    plan: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for obs in observations:
        for t in targets(ruleset, obs.domain, obs.type_name):
            if t.correlation:
                if obs.zone_id is not None and (
                    not t.where or any(_where(c, obs) for c in t.where)
                ):
                    plan[t.rule.id, obs.zone_id].append(obs)
                continue
            if t.where and not _where(t.where[0], obs):
                continue
            if t.metric is not None and t.metric not in obs.values:
                continue
            kind = t.key_kind
            key = (
                obs.zone_id if kind == "zone" else obs.source if kind == "source" else obs.entity_id
            )
            if key is not None:
                plan[t.rule.id, key].append(obs)
    for items in plan.values():
        items.sort(key=lambda o: o.time)
    return dict(sorted(plan.items()))  # a fixed order: the same output, and locks taken in order


@dataclass
class Outcome:
    states: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: incident id -> its snapshot after this batch
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: incident id -> the transitions it went through in this batch, in order
    transitions: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)
    late_for_rule: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def _iso(t: datetime) -> str:
    return t.isoformat()


def _time(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


_DEFAULTS = (None, False, "normal")


class _Key:
    """One (rule, key)'s state while a batch is applied; written back as a dict."""

    def __init__(self, rule: Rule, key: str, state: dict[str, Any], out: Outcome) -> None:
        self.rule, self.key, self.out = rule, key, out
        self.state = dict(state)
        self.applied = _time(self.state.get("t"))
        self.phase: str = self.state.get("phase", "normal")
        self.since = _time(self.state.get("since"))
        self.clear_since = _time(self.state.get("clear_since"))
        self.held: bool = bool(self.state.get("held", False))
        self.incident: dict[str, Any] | None = self.state.get("inc")
        self.last: dict[str, Any] | None = self.state.get("last")
        self.touched: list[str] = []
        #: a correlation's working `newest` and `hits` (see _correlation_work)
        self.work: tuple[Newest, Hits] | None = None
        #: a rate rule's lowest (highest) reading in its points, None until worked out
        self.extreme: float | None = None

    # -- incidents -----------------------------------------------------------------------------
    def _record(self, incident: dict[str, Any], transition: str, at: datetime) -> None:
        incident["version"] = int(incident.get("version", 0)) + 1
        self.touched.append(incident["id"])
        self.out.incidents[incident["id"]] = incident
        self.out.transitions.setdefault(incident["id"], []).append((transition, at))

    def open(
        self, obs: Observation, value: float | None, extra: dict[str, Any] | None = None
    ) -> None:
        rule = self.rule
        opened = obs.time
        flapping, flap_count, previous = False, 0, None
        if self.last is not None:
            previous = self.last["id"]
            flap_count = int(self.last.get("flap_count", 0))
            resolved = _time(self.last.get("resolved_at"))
            if resolved is not None and opened - resolved <= rule.flap_window:
                flapping, flap_count = True, flap_count + 1
        self.incident = {
            "id": incident_id(rule.id, self.key, opened), "rule": rule.id, "key": self.key,
            "zone": obs.zone_id, "entity": obs.entity_id, "state": "open",
            "opened_at": _iso(opened), "last_seen": _iso(opened), "resolved_at": None,
            "count": 1, "value": value, "peak": value, "previous": previous,
            "flapping": flapping, "flap_count": flap_count, "version": 0,
            "entities": [obs.entity_id], "values": dict(extra or {}),
        }  # fmt: skip
        self._record(self.incident, "opened", opened)

    def repeat(
        self, obs: Observation, value: float | None, extra: dict[str, Any] | None = None
    ) -> None:
        incident = self.incident
        assert incident is not None
        incident["count"] += 1
        incident["last_seen"] = _iso(obs.time)
        if value is not None:
            incident["value"] = value
            peak = incident.get("peak")
            higher = getattr(self.rule, "direction", "above") != "below"
            if peak is None or (value > peak if higher else value < peak):
                incident["peak"] = value
        if obs.entity_id not in incident["entities"] and len(incident["entities"]) < 100:
            incident["entities"].append(obs.entity_id)
        if extra:
            incident["values"].update(extra)
        self._record(incident, "updated", obs.time)

    def resolve(self, at: datetime) -> None:
        incident = self.incident
        assert incident is not None
        incident["state"] = "resolved"
        incident["resolved_at"] = _iso(at)
        self._record(incident, "resolved", at)
        self.last = {
            "id": incident["id"],
            "resolved_at": _iso(at),
            "flap_count": incident["flap_count"],
        }
        self.incident = None

    # -- the common raise/clear machine ----------------------------------------------------------
    def step(self, obs: Observation, breach: bool, clear: bool, value: float | None,
             hold_for: timedelta = timedelta(0), extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        """One observation of a rule with a raise condition (`breach`), a clear condition
        (`clear`; neither = the hysteresis band), a minimum duration and a quiet period."""
        t = obs.time
        if breach:
            self.clear_since = None
            if self.phase == "firing":
                if self.incident is not None:
                    self.repeat(obs, value, extra)
                return
            if self.phase != "pending":
                self.phase, self.since = "pending", t
            assert self.since is not None
            if t - self.since >= hold_for:
                self.phase = "firing"
                if not self.held:
                    self.open(obs, value, extra)
            return
        if self.phase == "pending":
            self.phase, self.since = "normal", None  # the minimum duration starts again
            return
        if self.phase != "firing":
            return
        if not clear:
            self.clear_since = None  # in the band: neither raised nor cleared
            return
        if self.clear_since is None:
            self.clear_since = t
        if t - self.clear_since >= self.rule.quiet:
            if self.incident is not None:
                self.resolve(t)
            self.phase, self.since, self.clear_since, self.held = "normal", None, None, False

    def save(self) -> dict[str, Any]:
        """The state to store; fields at their default (None, False, "normal") are left out,
        which keeps the thousands of quiet keys' rows small."""
        if self.work is not None:
            newest, hits = self.work
            self.state["newest"] = {i: stored for i, (_, stored) in newest.items()}
            self.state["hits"] = {i: [[t, e] for _, e, t in held] for i, held in hits.items()}
        self.state.update(
            t=None if self.applied is None else _iso(self.applied), phase=self.phase,
            since=None if self.since is None else _iso(self.since),
            clear_since=None if self.clear_since is None else _iso(self.clear_since),
            held=self.held, inc=self.incident, last=self.last,
        )  # fmt: skip
        return {k: v for k, v in self.state.items() if v not in _DEFAULTS or v == 0}


def _threshold(k: _Key, rule: Threshold, obs: Observation) -> None:
    value = obs.values[rule.metric]
    if rule.direction == "above":  # raised at raise_at or beyond, cleared short of clear_at
        breach, clear = value >= rule.raise_at, value < rule.clear_at
    else:
        breach, clear = value <= rule.raise_at, value > rule.clear_at
    extra = {rule.metric: value} if breach else None  # `step` reads it only on a breach
    k.step(obs, breach, clear, value, rule.for_, extra)


_MAX_POINTS = 500  # a rate rule's readings kept per key (the newest)


def _rate(k: _Key, rule: RateOfChange, obs: Observation) -> None:
    value = obs.values[rule.metric]
    rising = rule.change > 0
    pick = min if rising else max  # the change is measured from the window's lowest (highest)
    horizon = _iso(obs.time - rule.window)
    points: list[list[Any]] = k.state.setdefault("points", [])
    stale = 0  # the points are in time order: the ones out of the window are at the front
    while stale < len(points) and points[stale][0] < horizon:
        stale += 1
    points.append([_iso(obs.time), value])
    stale = max(stale, len(points) - _MAX_POINTS)
    if stale:
        if k.extreme is not None and any(p[1] == k.extreme for p in points[:stale]):
            k.extreme = None  # it left the window: found again below
        del points[:stale]
    if k.extreme is None:
        k.extreme = pick(p[1] for p in points)
    else:
        k.extreme = pick(k.extreme, value)
    change = value - k.extreme
    breach = change >= rule.change if rising else change <= rule.change
    clear = change < rule.clear_level if rising else change > rule.clear_level
    k.step(obs, breach, clear, round(change, 6), extra={"change": round(change, 6)})


def _baseline(k: _Key, rule: Baseline, obs: Observation) -> None:
    value = obs.values[rule.metric]
    band = rule.band(obs.time)
    upper = band.mean + rule.raise_sd * band.sd
    breach = value > upper and value >= rule.min_value
    clear = value < band.mean + rule.clear_sd * band.sd
    extra = {rule.metric: value, "expected": band.mean, "upper": round(upper, 6)}
    k.step(obs, breach, clear, value, rule.for_, extra)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _count(k: _Key, rule: Count, obs: Observation) -> None:
    """A sliding event-time window per key. `times` holds the newest `raise_at` event times
    (epoch ms, ascending) still in the window: an event at s counts while s > t - window.
    Between two events the count only falls, so when it fell to `clear_at` (and so when the
    incident resolves) is computed from `times`, not waited for."""
    t = (obs.time - _EPOCH) // _MS
    times: list[int] = k.state.setdefault("times", [])
    _count_settle(k, rule, times, t)
    times.append(t)  # late events never get here (see apply): t is the newest
    del times[: bisect.bisect_right(times, t - rule.window_ms)]
    del times[: -rule.raise_at]
    n = len(times)
    extra = {"in_window": n}
    if n >= rule.raise_at:
        k.clear_since = None
        if k.phase == "firing":
            if k.incident is not None:
                k.repeat(obs, n, extra)
        else:
            k.phase, k.since = "firing", obs.time
            if not k.held:
                k.open(obs, n, extra)
        return
    if k.phase != "firing":
        return
    if n > rule.clear_at:
        k.clear_since = None  # in the band: neither raised nor cleared
    elif k.clear_since is None:
        k.clear_since = obs.time
    _count_settle(k, rule, times, t)


def _count_settle(k: _Key, rule: Count, times: list[int], now: int) -> None:
    """A firing key up to event time `now` (ms) with no new event: the count fell to
    `clear_at` when the (clear_at + 1)-th newest time left the window; it resolves `quiet`
    later."""
    if k.phase != "firing":
        return
    if k.clear_since is None:
        j = len(times) - (rule.clear_at + 1)
        fell = times[j] + rule.window_ms if j >= 0 else (times[-1] if times else now)
        if fell <= now:
            k.clear_since = _EPOCH + fell * _MS
    if k.clear_since is not None and k.clear_since + rule.quiet <= _EPOCH + now * _MS:
        if k.incident is not None:
            k.resolve(k.clear_since + rule.quiet)
        k.phase, k.since, k.clear_since, k.held = "normal", None, None, False


def _geofence(k: _Key, rule: Geofence, obs: Observation) -> None:
    inside = obs.zone_id in rule.zones
    breach = inside if rule.when == "inside" else not inside
    k.step(obs, breach, not breach, None, extra={"zone": obs.zone_id})


_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
            "==": operator.eq, None: operator.eq}  # fmt: skip


def _holds(condition: Condition, obs: Observation) -> bool:
    if not _fits(condition, obs.domain, obs.type_name):
        return False
    if condition.where and not _where(condition, obs):
        return False
    if condition.metric is None:
        return True
    value = obs.values.get(condition.metric)
    if value is None or condition.value is None:
        return False
    return bool(_COMPARE[condition.op](value, condition.value))


def _correlation(k: _Key, rule: Correlation, obs: Observation) -> None:
    """Conditions come from several domains, so from several agents whose batches interleave:
    an event older than the zone's clock (the newest event time it has seen) is not late here.
    The result does not depend on the order in which the agents' batches arrive:
    - it opens at the earliest time T at which every condition held within [T - window, T]
      (from the times each condition held, kept since the window's start and the last
      resolution), with the entity whose event completed the set;
    - it repeats while every condition's newest time is within the window before the clock;
    - it stops holding when the oldest of those newest times leaves the window (E), and
      resolves at E + quiet, once the clock has passed that time."""
    now = obs.time if k.applied is None else max(k.applied, obs.time)
    k.applied = now
    horizon = now - rule.window
    resolved = _time((k.last or {}).get("resolved_at"))
    floor = horizon if resolved is None or resolved < horizon else resolved
    newest, hits = _correlation_work(k)
    for held in hits.values():  # each list is in time order: the stale ones are a prefix
        if held and held[0][0] < floor:
            del held[: bisect.bisect_left(held, (floor,))]
    t, stamp = obs.time, ""
    for index, condition in enumerate(rule.conditions):
        if not _holds(condition, obs):
            continue
        stamp = stamp or _iso(t)
        i = _index(index)
        if i not in newest or newest[i][0] < t:
            newest[i] = (t, stamp)
        held = hits.setdefault(i, [])
        if t >= floor and (len(held) < _MAX_HITS or t < held[-1][0]):
            bisect.insort(held, (t, obs.entity_id, stamp))
            del held[_MAX_HITS:]
    keys = _indexes(len(rule.conditions))
    all_hold = all(i in newest and newest[i][0] >= horizon for i in keys)
    if k.phase == "firing":
        hits.clear()  # not needed while it fires; collected afresh after it resolves
        if all_hold:
            if k.incident is not None:
                k.repeat(_at(obs, now), None, {"conditions_met": sorted(newest)})
        else:
            stopped = min(newest[i][0] for i in keys) + rule.window
            if now >= stopped + rule.quiet:
                if k.incident is not None:
                    k.resolve(stopped + rule.quiet)
                k.phase, k.held = "normal", False
    elif all_hold and (found := _earliest_complete(hits, keys, rule.window)) is not None:
        opened, entity = found
        k.phase = "firing"
        hits.clear()
        if not k.held:
            trigger = Observation(opened, obs.domain, obs.type_name, obs.source, entity,
                                  obs.zone_id, {}, "{}")  # fmt: skip
            k.open(trigger, None, {"conditions_met": sorted(newest)})


#: A correlation's working state: condition index -> (newest time it held, as stored), and
#: condition index -> the times it held, [(time, entity, time as stored)] in time order.
Newest = dict[str, tuple[datetime, str]]
Hits = dict[str, list[tuple[datetime, str, str]]]


def _correlation_work(k: _Key) -> tuple[Newest, Hits]:
    """A correlation key's `newest` and `hits`, read from its stored state at its first
    observation of the batch (times parsed once) and changed in place by the ones that follow;
    `_Key.save` writes them back."""
    if k.work is None:
        newest = {i: (datetime.fromisoformat(s), s) for i, s in k.state.get("newest", {}).items()}
        hits = {
            i: [(datetime.fromisoformat(s), e, s) for s, e in held]
            for i, held in k.state.get("hits", {}).items()
        }
        k.work = (newest, hits)
    return k.work


@functools.cache
def _index(i: int) -> str:
    return str(i)


@functools.cache
def _indexes(n: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(n))


def _at(obs: Observation, time: datetime) -> Observation:
    return Observation(time, obs.domain, obs.type_name, obs.source, obs.entity_id, obs.zone_id,
                       obs.values, obs.data_json)  # fmt: skip


_MAX_HITS = 256  # the earliest times kept per condition and zone while it does not fire


def _earliest_complete(
    hits: Hits, keys: Sequence[str], window: timedelta
) -> tuple[datetime, str] | None:
    """The earliest hit time T with every condition held in [T - window, T], and the entity
    whose event that was."""
    for candidate, entity in sorted({(h[0], h[1]) for i in keys for h in hits.get(i, [])}):
        start = candidate - window
        if all(any(start <= h[0] <= candidate for h in hits.get(i, [])) for i in keys):
            return candidate, entity
    return None


def _silence_seen(k: _Key, rule: Silence, obs: Observation) -> None:
    """An event from the key: it is alive; an open silence incident resolves at once."""
    k.state["source"] = obs.source
    if k.incident is not None:
        k.resolve(obs.time)
    k.phase, k.held = "normal", False


_STEP: dict[type, Any] = {
    Threshold: _threshold, RateOfChange: _rate, Geofence: _geofence,
    Correlation: _correlation, Silence: _silence_seen, Baseline: _baseline, Count: _count,
}  # fmt: skip


def apply(
    ruleset: RuleSet,
    plan: Mapping[tuple[str, str], Sequence[Observation]],
    states: Mapping[tuple[str, str], dict[str, Any]],
) -> Outcome:
    out = Outcome()
    for (rule_id, key), observations in plan.items():
        rule = ruleset.by_id(rule_id)
        k = _Key(rule, key, states.get((rule_id, key), {}), out)
        try:
            if isinstance(rule, Correlation):  # keeps its own clock (see _correlation)
                for obs in observations:
                    _correlation(k, rule, obs)
            else:
                step = _STEP[type(rule)]
                for obs in observations:
                    if k.applied is not None and obs.time < k.applied:
                        out.late_for_rule[rule_id] += 1
                        continue
                    k.applied = obs.time
                    step(k, rule, obs)
        except Exception:  # a bug in one rule: its key keeps its state, the batch goes on
            for incident_id in k.touched:  # an incident belongs to one (rule, key)
                out.incidents.pop(incident_id, None)
                out.transitions.pop(incident_id, None)
            out.errors[rule_id] += 1
            continue
        out.states[rule_id, key] = k.save()
    return out


def check_silence(
    rule: Silence,
    states: Mapping[str, dict[str, Any]],
    watermarks: Mapping[str, datetime],
    out: Outcome,
) -> None:
    """The silence rule's timer: a key whose last event is `after` older than its source's
    watermark (the newest event time stored from that source; for source keys, the newest of
    all) opens an incident dated last event + after. Deterministic in event time."""
    newest = max(watermarks.values(), default=None)
    for key, state in states.items():
        k = _Key(rule, key, state, out)
        if k.applied is None or k.incident is not None or k.held:
            continue
        reference = newest if rule.key == "source" else watermarks.get(state.get("source", ""))
        if reference is None or reference - k.applied < rule.after:
            continue
        at = k.applied + rule.after
        obs = Observation(at, rule.domain, rule.event_type or "", state.get("source", ""),
                          key if rule.key == "entity" else "", state.get("zone"), {})  # fmt: skip
        k.phase = "firing"
        k.open(obs, None, {"silent_since": _iso(k.applied)})
        out.states[rule.id, key] = k.save()


def describe(
    rule: Rule, incident: Mapping[str, Any], zone_name: str | None = None
) -> tuple[str, str]:
    """The incident's description in Vietnamese and English, from the rule's templates (which
    may also name the incident's triggering values, such as a baseline's `{expected}`)."""
    values = _Safe({name: _num(v) for name, v in (incident.get("values") or {}).items()})
    values.update(
        zone=zone_name or incident.get("zone") or "-", entity=incident.get("entity") or "-",
        value=_num(incident.get("value")), peak=_num(incident.get("peak")),
        count=incident.get("count"), metric=getattr(rule, "metric", "") or "",
        raise_at=_num(getattr(rule, "raise_at", None)), clear_at=_num(getattr(rule, "clear_at", None)),
    )  # fmt: skip
    return rule.description.vi.format_map(values), rule.description.en.format_map(values)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


class _Safe(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
