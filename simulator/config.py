"""The simulator's run options, validated (the CLI builds one from its flags)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Scenario = Literal[
    "flood", "festival-crowd", "coastal-storm", "air-pollution", "sensor-silence", "hospital-surge"
]
SCENARIOS: tuple[str, ...] = Scenario.__args__  # type: ignore[attr-defined]

# Faults the simulator can inject, and what the decoder (domains.envelope) says about each.
FAULT_REASONS: dict[str, str | None] = {
    "malformed_json": "bad_json",
    "wrong_type": "bad_type",
    "out_of_range": "out_of_range",
    "missing_field": "missing_field",
    "unknown_type": "unknown_type",
    "bad_coordinates": "bad_location",
    "oversized": "too_large",
    "duplicate": None,  # decodes fine; the pipeline counts it as a duplicate of an earlier id
    "late": None,  # decodes fine; stored, or too_late if its lag exceeds the pipeline's horizon
}
FAULTS: tuple[str, ...] = tuple(FAULT_REASONS)


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(ge=1, description="Messages to send (duplicates included).")
    rate: float = Field(2000.0, gt=0, description="Events per second of simulated time.")
    seed: int = 0
    start: AwareDatetime = Field(description="Event time of the first event (nominal).")
    domains: tuple[str, ...] = ()  # empty: all
    scenario: Scenario | None = None
    scenario_zone: str | None = None  # default: the scenario's usual zone, if the zone file has it
    faults: dict[str, float] = Field(default_factory=dict)
    structured_share: float = Field(0.1, ge=0, le=1, description="Share sent in structured mode.")
    max_late_s: float = Field(7200.0, gt=0, le=86_400, description="Late events lag up to this.")
    utc_offset_h: float = Field(7.0, ge=-12, le=14, description="Local time for daily patterns.")
    namespace: str = "vn.daklak"
    topic_prefix: str = "city"
    max_event_bytes: int = 65_536

    def fault_rates(self) -> dict[str, float]:
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {', '.join(FAULTS)}")
        total = sum(self.faults.values())
        if any(rate < 0 for rate in self.faults.values()) or total > 0.5:
            raise ValueError("fault rates must be >= 0 and add up to at most 0.5")
        return {name: self.faults.get(name, 0.0) for name in FAULTS}

    @property
    def start_ts(self) -> float:
        return self.start.timestamp()

    def time_of(self, seq: int) -> float:
        """Nominal event time (epoch seconds) of message `seq`."""
        return self.start_ts + seq / self.rate

    def end(self) -> datetime:
        return datetime.fromtimestamp(self.time_of(self.count), tz=self.start.tzinfo)


DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """'10m' -> 600.0; units ms, s, m, h (seconds if none)."""
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"duration {text!r}: expected a number with ms, s, m or h (e.g. 10m)")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_faults(every: float, overrides: list[str]) -> dict[str, float]:
    rates = dict.fromkeys(FAULTS, every) if every else {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in FAULTS:
            raise ValueError(
                f"--fault {item!r}: expected KIND=RATE with KIND one of {', '.join(FAULTS)}"
            )
        try:
            rates[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--fault {item!r}: {value!r} is not a number") from None
    return rates
