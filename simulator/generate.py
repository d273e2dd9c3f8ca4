"""The simulator's pure part: a seeded world of entities in zones, and the message stream.

`Simulation(config, registry, zones).messages()` yields `Message`s (topic, key, value, headers)
ready for Kafka, each with the outcome the decoder and the pipeline should reach: `stored`,
`duplicate` (an id already sent), or `dlq` with the decoder's reason code. The `Manifest` adds
them up per domain and lists every injected fault, so a test can account for every message.
No I/O here: `simulator.produce` sends the messages.

Determinism: everything comes from one `random.Random(seed)` and the nominal clock
(`start + seq / rate`), so a seed and a start time give the same messages byte for byte.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from domains import agriculture, environment, health, security, tourism
from domains import transport as tr
from domains.base import DomainEvent
from domains.envelope import DATA_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE, structured_document
from domains.registry import EventType, Registry
from geo.zones import ZoneIndex
from rules.load import RuleSet, default_rule_files, load_rule_files
from rules.model import Correlation, Threshold
from simulator.config import FAULT_REASONS, SimulatorConfig
from simulator.profiles import (
    PROFILES,
    SCRIPTS,
    Entity,
    Moment,
    Profile,
    Script,
    Site,
    initial_state,
    scripted_reading,
)

# Where each scenario happens, by official unit code (None: everywhere). Another city's zone
# file: pass --scenario-zone, or the first ward (or zone) is used and the manifest says so.
SCENARIO_ZONES: dict[str, str | None] = {
    "flood": "22015",  # Tuy Hoà ward: the Đà Rằng in flood and a storm from the sea
    "festival-crowd": "24133",  # Buôn Ma Thuột ward: the coffee festival's square
    "coastal-storm": "22051",  # Sông Cầu ward: Dân Phước port and Xuân Đài bay
    "air-pollution": "24121",  # Tân Lập ward
    "sensor-silence": "24154",  # Thành Nhất ward
    "hospital-surge": None,
}
# Entities added to the scenario's zone so that its signals exist there: (model, how many).
SCENARIO_ENTITIES: dict[str, tuple[tuple[type[DomainEvent], int], ...]] = {
    "flood": (
        (environment.WaterLevelObserved, 2),
        (environment.WeatherObserved, 2),
        (tr.TrafficFlowObserved, 6),
        (security.CameraEvent, 3),
    ),
    "festival-crowd": (
        (tourism.VisitorCount, 2),
        (security.CameraEvent, 6),
        (tr.TrafficFlowObserved, 4),
        (tr.ParkingOccupancy, 3),
        (health.AmbulanceDispatch, 2),
    ),
    "coastal-storm": ((environment.WeatherObserved, 1), (tr.PortStatus, 1)),
    "air-pollution": ((environment.AirQualityObserved, 3), (environment.AirQualityObservedV2, 1)),
    "sensor-silence": (
        (environment.AirQualityObserved, 2),
        (environment.WeatherObserved, 2),
        (agriculture.SoilMoistureObserved, 3),
    ),
    "hospital-surge": (),
}
# How much more often event types report while a scenario runs at full strength.
SCENARIO_BOOST: dict[str, dict[type[DomainEvent], float]] = {
    "flood": {
        environment.WaterLevelObserved: 3,
        environment.WeatherObserved: 2,
        security.EmergencyCall: 3,
    },
    "festival-crowd": {tourism.VisitorCount: 4, security.CameraEvent: 2, tourism.HotelOccupancy: 2},
    "air-pollution": {environment.AirQualityObserved: 2, environment.AirQualityObservedV2: 2},
    "coastal-storm": {},
    "sensor-silence": {},
    "hospital-surge": {
        health.AmbulanceDispatch: 4,
        health.HospitalBedOccupancy: 3,
        health.DiseaseCaseReport: 3,
    },
}
SCENARIO_WINDOW = (0.1, 0.7)  # the scenario runs over this share of the run
DUPLICATE_POOL = 1000


@dataclass(slots=True)
class Message:
    seq: int
    domain: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    id: str  # the event id (a duplicate has its original's)
    fault: str | None = None
    outcome: str = "stored"  # stored | duplicate | dlq
    reason: str | None = None  # the decoder's reason code when outcome == "dlq"
    lag_s: float = 0.0  # late events: seconds behind the sending clock (a script's run is older)


@dataclass
class Manifest:
    """What a run sent and what should become of each message (JSON with `to_json`)."""

    run: dict[str, Any]
    sent: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: a scripted scenario's incidents: rule, zone, entity, opened_at, resolved_at (event times)
    incidents: list[dict[str, Any]] = field(default_factory=list)

    def add(self, message: Message) -> None:
        domain = message.domain
        self.sent[domain] += 1
        counts = self.outcomes.get(domain)
        if counts is None:
            counts = self.outcomes[domain] = Counter()
        if message.fault is None:
            counts["stored"] += 1
            return
        label = message.outcome if message.outcome != "dlq" else f"dlq:{message.reason}"
        counts[label] += 1
        if message.fault:
            entry: dict[str, Any] = {
                "seq": message.seq,
                "domain": message.domain,
                "fault": message.fault,
                "id": message.id,
                "outcome": message.outcome,
                "reason": message.reason,
            }
            if message.fault == "late":
                entry["lag_s"] = round(message.lag_s, 3)
            self.faults.append(entry)

    def expected(self, late_horizon_s: float | None = None) -> dict[str, dict[str, int]]:
        """Per domain: stored, duplicate and dlq:<reason> counts. With a late horizon, late
        events whose lag exceeds it move from `stored` to `dlq:too_late`."""
        result = {domain: dict(counts) for domain, counts in self.outcomes.items()}
        if late_horizon_s is not None:
            for fault in self.faults:
                if fault["fault"] == "late" and fault["lag_s"] > late_horizon_s:
                    counts = result[fault["domain"]]
                    counts["stored"] -= 1
                    counts["dlq:too_late"] = counts.get("dlq:too_late", 0) + 1
        return {d: {k: v for k, v in c.items() if v} for d, c in sorted(result.items())}

    def total(self) -> int:
        return sum(self.sent.values())

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "run": self.run,
                "sent": dict(sorted(self.sent.items())),
                "total": self.total(),
                "expected": self.expected(),
                "faults_injected": dict(Counter(f["fault"] for f in self.faults)),
                "faults": self.faults,
                "incidents": self.incidents,
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        doc = orjson.loads(raw)
        return cls(
            run=doc["run"],
            sent=Counter(doc["sent"]),
            outcomes={d: Counter(c) for d, c in doc["expected"].items()},
            faults=doc["faults"],
            incidents=doc.get("incidents", []),
        )


class Simulation:
    def __init__(self, config: SimulatorConfig, registry: Registry, zones: ZoneIndex) -> None:
        self.config = config
        self.registry = registry
        self.rng = random.Random(config.seed)
        self.fault_rates = config.fault_rates()
        domains = config.domains or tuple(registry.domains())
        unknown = set(domains) - set(registry.domains())
        if unknown:
            raise ValueError(f"unknown domain(s) {sorted(unknown)}; known: {registry.domains()}")
        self.types: list[EventType] = [
            t for t in registry if t.domain in domains and t.model in PROFILES
        ]
        if not self.types:
            raise ValueError("no event types to simulate")
        self.zones = zones
        self.scenario = config.scenario
        self.scenario_zone, zone_note = self._scenario_zone()
        self.entities: dict[type[DomainEvent], list[Entity]] = {}
        self.placed_by_kind: list[str] = []  # profiles whose sites' units the zone file lacks
        for event_type in self.types:
            self.entities[event_type.model] = self._place(event_type.model)
        self.script: Script | None = (
            SCRIPTS.get(self.scenario or "") if self.scenario_zone else None
        )
        #: the scripted entities (signal index, entity), in the scenario's zone
        self.scripted: list[tuple[int, Entity]] = []
        if self.script is not None:
            for index, signal in enumerate(self.script.signals):
                self.scripted += [
                    (index, e)
                    for e in self.entities.get(signal.model, [])
                    if e.zone_id == self.scenario_zone
                ]
        # the clock: event time of message seq is first_ts + seq * step
        end_ts = config.start_ts + config.count / config.rate
        if self.script is None:
            self.first_ts, self.step = config.start_ts, 1.0 / config.rate
        else:  # the run covers the script's span, ending at its nominal end (never ahead of it)
            self.first_ts = float(
                math.floor(end_ts - max(self.script.span_s, config.count / config.rate))
            )
            self.step = (end_ts - self.first_ts) / config.count
        self.end_ts = end_ts
        first, last = SCENARIO_WINDOW
        self.window = (int(config.count * first), int(config.count * last))
        self.silenced: set[str] = set()
        if self.scenario == "sensor-silence":
            self.silenced = {
                e.id for ents in self.entities.values() for e in ents if e.scenario
            } or {self.entities[self.types[0].model][0].id}
        self.manifest = Manifest(run=self._describe(zone_note))
        #: scripted readings sent: (event time, signal index, entity id, in its phase)
        self.readings: list[tuple[float, int, str, bool]] = []

    def time_of(self, seq: int) -> float:
        """Nominal event time (epoch seconds) of message `seq`."""
        return self.first_ts + seq * self.step

    # -- the world -------------------------------------------------------------------------------
    def _scenario_zone(self) -> tuple[str | None, str | None]:
        if self.scenario is None:
            return None, None
        wanted = self.config.scenario_zone or SCENARIO_ZONES[self.scenario]
        if wanted is None:
            return None, "everywhere"
        try:
            self.zones.zone(wanted)
            return wanted, None
        except KeyError:
            if self.config.scenario_zone:
                raise ValueError(f"zone {wanted!r} is not in the zone file") from None
        wards = [z for z in self.zones.zones if z.kind == "ward"] or self.zones.zones
        return wards[0].id, f"{wanted!r} is not in the zone file; used {wards[0].id!r}"

    def _zones_for(self, profile: Profile) -> list[str]:
        chosen = [z.id for z in self.zones.zones if z.kind in profile.zone_kinds]
        return chosen or [z.id for z in self.zones.zones]

    def _sites_for(self, profile: Profile) -> list[Site]:
        """The profile's sites, or with a zone file that lacks their units (another city's),
        one site per zone of the profile's kinds (the manifest lists such profiles)."""
        known = self.zones.ids
        sites = [site for site in profile.sites if site.zone_id in known]
        if sites:
            return sites
        if profile.sites:
            self.placed_by_kind.append(profile.prefix)
        r = self.rng
        zone_ids = self._zones_for(profile)
        return [Site(zone_ids[r.randrange(len(zone_ids))]) for _ in range(profile.count)]

    def _place(self, model: type[DomainEvent]) -> list[Entity]:
        profile = PROFILES[model]
        r = self.rng
        sites = self._sites_for(profile)
        placed = [(n, sites[n % len(sites)]) for n in range(profile.count)]
        if self.scenario and self.scenario_zone:
            extra = dict(SCENARIO_ENTITIES[self.scenario]).get(model, 0)
            zone = self.scenario_zone
            here = [site for site in sites if site.zone_id == zone]
            placed += [
                (n, here[k % len(here)] if here else Site(zone, sites[n % len(sites)].attrs))
                for k, n in enumerate(range(profile.count, profile.count + extra))
            ]
        entities = []
        for n, site in placed:
            zone_id = site.zone_id
            entity_id = f"{profile.prefix}-{zone_id}-{n:03d}"
            if site.lon is not None and site.lat is not None:
                lon, lat = site.lon, site.lat
            else:
                lon, lat = self.zones.random_point(zone_id, r)
            base: dict[str, Any] = {"entity_id": entity_id}
            if profile.zone_only:
                base["zone_id"] = zone_id
            else:
                base["location"] = {"type": "Point", "coordinates": [lon, lat]}
            in_scenario = self.scenario is not None and (
                self.scenario_zone is None or zone_id == self.scenario_zone
            )
            entities.append(
                Entity(
                    entity_id,
                    model,
                    zone_id,
                    lon,
                    lat,
                    {**profile.attrs(n, r), **site.attrs},
                    base,
                    initial_state(model, r),
                    in_scenario,
                )
            )
        return entities

    def _describe(self, zone_note: str | None) -> dict[str, Any]:
        c = self.config
        run: dict[str, Any] = {
            "seed": c.seed,
            "count": c.count,
            "rate": c.rate,
            "start": c.start.isoformat(),
            "end": c.end().isoformat(),
            "first_event_time": _iso(self.first_ts),
            "namespace": c.namespace,
            "topics": {t.domain: self.registry.topic(t.domain) for t in self.types},
            "types": [t.type for t in self.types],
            "entities": sum(len(e) for e in self.entities.values()),
            "structured_share": c.structured_share,
            "fault_rates": self.fault_rates,
            "fault_reasons": FAULT_REASONS,
            "max_late_s": c.max_late_s,
            "max_event_bytes": c.max_event_bytes,
            "scenario": None,
        }
        if self.placed_by_kind:
            run["placed_by_zone_kind"] = {
                "profiles": self.placed_by_kind,
                "note": "their sites' units are not in the zone file: placed in zones by kind",
            }
        if self.scenario:
            start, end = self.window
            run["scenario"] = {
                "name": self.scenario,
                "zone_id": self.scenario_zone,
                "note": zone_note,
                "from": _iso(self.time_of(start)),
                "to": _iso(self.time_of(end)),
                "silenced_entities": sorted(self.silenced),
            }
            if self.script is not None:
                run["scenario"]["scripted"] = {
                    "compound": self.script.compound,
                    "every_s": self.script.every_s,
                    "entities": sorted(e.id for _, e in self.scripted),
                    "note": "scripted entities report on a fixed schedule; their incidents are "
                    "computed for the shipped default rules",
                }
        return run

    # -- the clock -------------------------------------------------------------------------------
    def _moment(self, seq: int, t: float) -> Moment:
        local = datetime.fromtimestamp(t + self.config.utc_offset_h * 3600, UTC)
        doy = local.timetuple().tm_yday
        rainy = math.sin((doy - 120) / 184 * math.pi) if 120 <= doy <= 304 else 0.0
        festival = 0.6 if local.month == 3 and 8 <= local.day <= 14 and local.year % 2 else 0.0
        intensity = 0.0
        start, end = self.window
        if self.scenario and self.script is None and start <= seq < end:
            ramp = max(1, (end - start) * 3 // 10)
            intensity = min(1.0, (seq - start + 1) / ramp)
        return Moment(
            local.hour + local.minute / 60,
            local.weekday(),
            local.month,
            rainy,
            festival,
            self.scenario,
            intensity,
        )

    def _weights(self, moment: Moment) -> list[float]:
        boost = SCENARIO_BOOST.get(self.scenario or "", {})
        cumulative, total = [], 0.0
        for event_type in self.types:
            profile = PROFILES[event_type.model]
            factor = 1 + (boost.get(event_type.model, 1) - 1) * moment.intensity
            total += profile.weight * max(profile.weight_by(moment), 0.001) * factor
            cumulative.append(total)
        return cumulative

    # -- the stream ------------------------------------------------------------------------------
    def messages(self) -> Iterator[Message]:
        c, r = self.config, self.rng
        types = self.types
        topics = [self.registry.topic(t.domain) for t in types]
        sources = [f"/sim/{t.domain}/{PROFILES[t.model].prefix}" for t in types]
        source_headers = [("ce_source", source.encode()) for source in sources]
        type_headers = [("ce_type", t.type.encode()) for t in types]
        entities = [self.entities[t.model] for t in types]
        readings = [PROFILES[t.model].reading for t in types]
        fault_names = [name for name, rate in self.fault_rates.items() if rate > 0]
        fault_cum, acc = [], 0.0
        for name in fault_names:
            acc += self.fault_rates[name]
            fault_cum.append(acc)
        fault_total = acc
        pool: deque[Message] = deque(maxlen=DUPLICATE_POOL)
        silence_from, silence_to = self.window
        second = -1
        prefix = ""
        start_ts, step = self.first_ts, self.step
        scripted_ids = {e.id for _, e in self.scripted}
        if scripted_ids:  # scripted entities report only on their schedule
            entities = [[e for e in ents if e.id not in scripted_ids] or ents for ents in entities]
        index_of = {t.model: k for k, t in enumerate(types)}
        schedule = self._schedule()
        moment = Moment()
        cumulative: list[float] = []
        for seq in range(c.count):
            t = start_ts + seq * step
            if int(t) != second or seq in (silence_from, silence_to):
                second = int(t)
                prefix = _iso(second)[:-9]  # "YYYY-MM-DDTHH:MM:SS."
                moment = self._moment(seq, t)
                cumulative = self._weights(moment)
            if schedule and schedule[0][0] <= t:
                message = self._scripted(seq, schedule, index_of, moment)
                self.manifest.add(message)
                yield message
                continue
            fault = None
            if fault_total and r.random() < fault_total:
                fault = fault_names[bisect.bisect(fault_cum, r.random() * fault_total)]
                if fault == "duplicate":
                    if pool:
                        original = pool[r.randrange(len(pool))]
                        message = Message(
                            seq,
                            original.domain,
                            original.topic,
                            original.key,
                            original.value,
                            original.headers,
                            original.id,
                            "duplicate",
                            "duplicate",
                        )
                        self.manifest.add(message)
                        yield message
                        continue
                    fault = None  # nothing sent yet to duplicate: a clean event instead
            k = min(bisect.bisect(cumulative, r.random() * cumulative[-1]), len(types) - 1)
            ents = entities[k]
            entity = ents[int(r.random() * len(ents))]
            if self.silenced and silence_from <= seq < silence_to:
                for _ in range(20):
                    if entity.id not in self.silenced:
                        break
                    k = r.randrange(len(types))
                    ents = entities[k]
                    entity = ents[int(r.random() * len(ents))]
                else:
                    k, entity = self._any_unsilenced(entities)
            event_type = types[k]
            data = readings[k](entity, moment, r)
            event_id = _uuid4(r.getrandbits(128))
            type_string = event_type.type
            structured = r.random() < c.structured_share
            lag = 0.0
            reason = None
            if fault is not None:
                reason = FAULT_REASONS[fault]
                if fault == "late":
                    lag = r.uniform(1.0, c.max_late_s)
                elif fault == "unknown_type":
                    type_string = type_string.rpartition(".v")[0] + ".v99"
                else:
                    data = self._damage(fault, data, event_type.model)
            time = _iso(t - lag) if lag else f"{prefix}{int((t - second) * 1000):03d}+00:00"
            if structured:
                value = orjson.dumps(
                    structured_document(event_id, sources[k], type_string, time, data)
                )
                headers = [("content-type", STRUCTURED_BYTES)]
            else:
                value = orjson.dumps(data)
                headers = [
                    SPECVERSION_HEADER,
                    ("ce_id", event_id.encode()),
                    source_headers[k],
                    type_headers[k]
                    if type_string is event_type.type
                    else ("ce_type", type_string.encode()),
                    ("ce_time", time.encode()),
                    CONTENT_TYPE_HEADER,
                ]
            if fault == "malformed_json":
                value = value[: len(value) // 2]
            message = Message(
                seq,
                event_type.domain,
                topics[k],
                entity.id.encode(),
                value,
                headers,
                event_id,
                fault,
                "dlq" if reason else "stored",
                reason,
                lag + (c.start_ts + seq / c.rate - t) if lag else 0.0,  # behind the sending clock
            )
            if fault is None:
                pool.append(message)
            self.manifest.add(message)
            yield message
        if self.script is not None:
            self.manifest.incidents = expected_incidents(
                self.script, self.scenario_zone or "", self.readings, default_rules()
            )

    # -- scripted scenarios ----------------------------------------------------------------------
    def _schedule(self) -> list[tuple[float, int]]:
        """(time, index into self.scripted) of each scripted entity's first reading, a heap."""
        if self.script is None:
            return []
        every = self.script.every_s
        heap = [(self.first_ts + 1 + j % (every - 1), j) for j in range(len(self.scripted))]
        heapq.heapify(heap)
        return heap

    def _scripted(
        self, seq: int, schedule: list[tuple[float, int]], index_of: dict[Any, int], moment: Moment
    ) -> Message:
        """The next scheduled reading (its own event time, no fault), and the next one queued."""
        assert self.script is not None
        at, j = heapq.heappop(schedule)
        if at + self.script.every_s < self.end_ts:
            heapq.heappush(schedule, (at + self.script.every_s, j))
        index, entity = self.scripted[j]
        signal = self.script.signals[index]
        k = index_of[signal.model]
        event_type = self.types[k]
        profile = PROFILES[signal.model]
        offset = at - self.first_ts
        data = scripted_reading(signal, entity, offset, profile.reading(entity, moment, self.rng))
        start, end, _ = signal.phase
        self.readings.append((at, index, entity.id, start <= offset < end))
        event_id = _uuid4(self.rng.getrandbits(128))
        source = f"/sim/{event_type.domain}/{profile.prefix}"
        headers = [
            SPECVERSION_HEADER, ("ce_id", event_id.encode()), ("ce_source", source.encode()),
            ("ce_type", event_type.type.encode()), ("ce_time", _iso(at).encode()),
            CONTENT_TYPE_HEADER,
        ]  # fmt: skip
        return Message(
            seq, event_type.domain, self.registry.topic(event_type.domain), entity.id.encode(),
            orjson.dumps(data), headers, event_id,
        )  # fmt: skip

    def _any_unsilenced(self, entities: list[list[Entity]]) -> tuple[int, Entity]:
        for k, ents in enumerate(entities):
            for entity in ents:
                if entity.id not in self.silenced:
                    return k, entity
        raise ValueError("every simulated entity is silenced: nothing left to send")

    def _damage(self, fault: str, data: dict[str, Any], model: type[DomainEvent]) -> dict[str, Any]:
        data = dict(data)
        measure = next((m.field for m in model.spec.measures if m.field in data), "entity_id")
        if fault == "wrong_type":
            data[measure] = "n/a"
        elif fault == "out_of_range":
            data[measure] = -1_000_000_000  # an integer: the right type for every field
        elif fault == "missing_field":
            del data["entity_id"]
        elif fault == "bad_coordinates":
            lon, lat = (data.get("location") or {}).get("coordinates", (108.0, 12.7))
            bad = [lon + 360.0, lat] if self.rng.random() < 0.5 else [lon, 95.0]
            data["location"] = {"type": "Point", "coordinates": bad}
        elif fault == "oversized":
            data["notes"] = "x" * self.config.max_event_bytes
        elif fault == "malformed_json":
            pass  # the encoded value is cut in half after encoding
        return data


STRUCTURED_BYTES = STRUCTURED_CONTENT_TYPE.encode()
SPECVERSION_HEADER = ("ce_specversion", b"1.0")
CONTENT_TYPE_HEADER = ("content-type", DATA_CONTENT_TYPE.encode())


def _uuid4(bits: int) -> str:
    """A version-4 UUID string from 128 random bits (uuid.UUID is slow in a hot loop)."""
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[bits & 3]}{h[17:20]}-{h[20:]}"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def default_rules() -> RuleSet:
    return load_rule_files(default_rule_files())


def expected_incidents(
    script: Script, zone: str, readings: list[tuple[float, int, str, bool]], rules: RuleSet
) -> list[dict[str, Any]]:
    """The incidents a script's readings must open under `rules`: each signal's per-entity
    threshold rule (its `for` and `quiet`) and the compound rule (its `window` and `quiet`),
    with the event times of opening and resolution (None: still open at the end of the run).
    The readings breach inside their phase and are clear outside it (no hysteresis band)."""
    out: list[dict[str, Any]] = []
    for index, signal in enumerate(script.signals):
        if signal.rule is None:
            continue
        rule = rules.by_id(signal.rule)
        assert isinstance(rule, Threshold), signal.rule
        by_entity: dict[str, list[tuple[float, bool]]] = {}
        for t, i, entity, breach in readings:
            if i == index:
                by_entity.setdefault(entity, []).append((t, breach))
        for entity, seen in sorted(by_entity.items()):
            holds = [(t, breach, entity) for t, breach in seen]
            out += _occurrences(rule.id, zone, holds, rule.for_.total_seconds(), rule.quiet)
    compound = rules.by_id(script.compound)
    assert isinstance(compound, Correlation), script.compound
    out += _compound_occurrences(compound, zone, readings, len(script.signals))
    return sorted(out, key=lambda i: (i["opened_at"], i["rule"], i["entity"]))


def _compound_occurrences(
    rule: Correlation, zone: str, readings: list[tuple[float, int, str, bool]], signals: int
) -> list[dict[str, Any]]:
    """As rules.engine decides a correlation: it opens at the first reading that completes the
    set (every signal breached within the window), and once the set no longer holds it resolves
    at the moment the oldest signal's last breach left the window, plus the quiet period, when
    a later reading shows that time has passed."""
    window, quiet = rule.window.total_seconds(), rule.quiet.total_seconds()
    newest: dict[int, float] = {}
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for t, i, entity, breach in readings:
        if breach:
            newest[i] = t
        all_hold = len(newest) == signals and all(h >= t - window for h in newest.values())
        if current is None and all_hold:
            current = {"rule": rule.id, "zone": zone, "entity": entity, "key": zone,
                       "opened_at": _iso(t), "resolved_at": None}  # fmt: skip
            out.append(current)
        elif current is not None and not all_hold:
            resolved = min(newest.values()) + window + quiet
            if t >= resolved:
                current["resolved_at"], current = _iso(resolved), None
    return out


def _occurrences(
    rule: str, zone: str, holds: list[tuple[float, bool, str]], for_s: float, quiet: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """Raise after `for_s` of breaching readings; resolve once clear for `quiet`."""
    quiet_s = quiet.total_seconds()
    out: list[dict[str, Any]] = []
    pending: float | None = None
    clear_since: float | None = None
    current: dict[str, Any] | None = None
    for t, breach, entity in holds:
        if breach:
            clear_since = None
            if current is not None:
                continue
            pending = t if pending is None else pending
            if t - pending >= for_s:
                current = {"rule": rule, "zone": zone, "entity": entity, "key": entity,
                           "opened_at": _iso(t), "resolved_at": None}  # fmt: skip
                out.append(current)
            continue
        pending = None
        if current is None:
            continue
        clear_since = t if clear_since is None else clear_since
        if t - clear_since >= quiet_s:
            current["resolved_at"] = _iso(t)
            current, clear_since = None, None
    return out
