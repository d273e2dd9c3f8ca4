"""What the sink writes: plain typed rows, built by the pipeline from validated, geo-enriched events.

The sink knows nothing of CloudEvents, Faust or the domain models; `streams/` converts a decoded
event into one `EventRow` and the `MeasurementRow`s its model declares. Datetimes must be
timezone-aware (a naive one is rejected as a bad row, never guessed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


class EventRow(NamedTuple):
    """One row of `events`; natural key (time, id)."""

    id: str
    time: datetime
    source: str
    type: str
    domain: str
    entity_id: str
    zone_id: str | None
    lon: float | None
    lat: float | None
    subject: str | None
    data: str | Mapping[str, Any]  # JSON text, or a mapping the sink serialises with orjson


class MeasurementRow(NamedTuple):
    """One row of `measurements`; natural key (time, entity_id, metric)."""

    time: datetime
    domain: str
    metric: str
    entity_id: str
    zone_id: str | None
    value: float
    unit: str | None


Row = EventRow | MeasurementRow


@dataclass
class Batch:
    """Events and measurements written together in one transaction."""

    events: list[EventRow] = field(default_factory=list)
    measurements: list[MeasurementRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events) + len(self.measurements)

    def add(self, row: Row) -> None:
        if isinstance(row, EventRow):
            self.events.append(row)
        elif isinstance(row, MeasurementRow):
            self.measurements.append(row)
        else:
            raise TypeError(f"expected EventRow or MeasurementRow, got {type(row).__name__}")

    def rows(self) -> list[Row]:
        return [*self.events, *self.measurements]

    @classmethod
    def of(cls, rows: list[Row]) -> Batch:
        batch = cls()
        for row in rows:
            batch.add(row)
        return batch
