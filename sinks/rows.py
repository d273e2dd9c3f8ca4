"""What the sink writes: plain typed rows, built by the pipeline from validated, geo-enriched events.

The sink knows nothing of CloudEvents, Faust or the domain models; `streams/` converts a decoded
event into one `EventRow` and the `MeasurementRow`s its model declares, and adds them to a `Batch`
together. Datetimes must be timezone-aware (a naive one is rejected as a bad row, never guessed).

Only events are deduplicated (natural key (time, source, id)). Measurements are facts derived from their
event: they are stored exactly when their event is newly stored, so a measurement never travels
without its event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple


class EventRow(NamedTuple):
    """One row of `events`; natural key (time, source, id).

    `record` is not a column: it is the index of the Kafka record the row came from in its
    batch (-1 when it came from elsewhere), carried from split to write to rejection so that a
    row the database refuses maps back to its record by that index alone."""

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
    record: int = -1


class MeasurementRow(NamedTuple):
    """One row of `measurements`, derived from one event (no key of its own)."""

    time: datetime
    domain: str
    metric: str
    entity_id: str
    zone_id: str | None
    value: float
    unit: str | None


Row = EventRow | MeasurementRow


class Batch:
    """Events, each with its measurement rows, written together in one transaction.

    The measurements are one flat list in event order (what COPY streams, with no per-event
    lists to walk); `ends[i]` is the end of event i's span in it, so event i owns
    `measurements[ends[i - 1]:ends[i]]` (from 0 for the first event).

        batch = Batch()
        batch.add_event(event, [m1, m2, m3])

    `len(batch)` is the number of events; `rows` counts events and measurements.
    """

    __slots__ = ("ends", "events", "measurements")

    def __init__(
        self,
        events: list[EventRow] | None = None,
        measurements: list[MeasurementRow] | None = None,
        ends: list[int] | None = None,
    ) -> None:
        """Take the three lists as they are (not copied). Without `ends`, only events and no
        measurements may be given (a measurement without its event is refused)."""
        self.events = [] if events is None else events
        self.measurements = [] if measurements is None else measurements
        if ends is None:
            if self.measurements:
                raise ValueError(
                    "measurement rows without their events: give `ends` (the end of each "
                    "event's span in `measurements`) or use Batch.add_event"
                )
            ends = [0] * len(self.events)
        self.ends = ends
        self._check()

    def _check(self) -> None:
        ends, n = self.ends, len(self.measurements)
        if len(ends) != len(self.events):
            raise ValueError(f"{len(self.events)} events but {len(ends)} span ends")
        if (ends[-1] if ends else 0) != n or (ends and ends[0] < 0) or ends != sorted(ends):
            raise ValueError(
                f"span ends must rise from 0 to len(measurements) = {n}; measurement rows "
                "without an event are not accepted"
            )

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"Batch({len(self.events)} events, {len(self.measurements)} measurements)"

    @property
    def rows(self) -> int:
        return len(self.events) + len(self.measurements)

    def add_event(self, event: EventRow, measurements: Iterable[MeasurementRow] = ()) -> None:
        """Add one event and the measurement rows derived from it."""
        if type(event) is not EventRow:
            raise TypeError(
                f"expected an EventRow, got {type(event).__name__}; a measurement is added "
                "with its event: add_event(event, measurements)"
            )
        start = len(self.measurements)
        self.measurements += measurements
        for row in self.measurements[start:]:
            if type(row) is not MeasurementRow:
                del self.measurements[start:]
                raise TypeError(f"expected MeasurementRow, got {type(row).__name__}")
        self.events.append(event)
        self.ends.append(len(self.measurements))

    def extend(self, other: Batch) -> None:
        """Append the events of `other`, each with its measurements."""
        offset = len(self.measurements)
        self.events += other.events
        self.measurements += other.measurements
        self.ends += [end + offset for end in other.ends]

    def spans(self) -> Iterator[tuple[EventRow, list[MeasurementRow]]]:
        """Each event with its measurement rows."""
        start, measurements = 0, self.measurements
        for event, end in zip(self.events, self.ends, strict=True):
            yield event, measurements[start:end]
            start = end

    def measurements_of(self, index: int) -> list[MeasurementRow]:
        return self.measurements[self.ends[index - 1] if index else 0 : self.ends[index]]

    def select(self, indices: Iterable[int]) -> Batch:
        """A new batch of the events at `indices` (in that order), each with its measurements."""
        out = Batch()
        events, measurements, ends = out.events, out.measurements, out.ends
        for i in indices:
            events.append(self.events[i])
            measurements += self.measurements_of(i)
            ends.append(len(measurements))
        return out

    def slice(self, start: int, stop: int) -> Batch:
        """Events [start, stop) with their measurements (one list slice each)."""
        lo = self.ends[start - 1] if start else 0
        hi = self.ends[stop - 1] if stop > start else lo
        return Batch(
            self.events[start:stop],
            self.measurements[lo:hi],
            [end - lo for end in self.ends[start:stop]],
        )

    @classmethod
    def of(cls, items: Iterable[tuple[EventRow, Sequence[MeasurementRow]] | EventRow]) -> Batch:
        """A batch from (event, measurements) pairs; a bare EventRow has no measurements."""
        batch = cls()
        for item in items:
            if type(item) is EventRow:
                batch.add_event(item)
            elif isinstance(item, tuple) and len(item) == 2:
                batch.add_event(*item)
            else:
                raise TypeError(
                    f"expected (EventRow, [MeasurementRow, ...]) or EventRow, got "
                    f"{type(item).__name__}; measurement rows without an event are not accepted"
                )
        return batch
