"""The dead-letter topic: rejected events with their reason, and the tools around it.

A dead letter is the original message, bytes untouched (key, value and headers as they came),
plus `ioc_*` headers that say why and where from:

    ioc_reason          reason code (bad_json, unknown_type, too_late, ...)
    ioc_message         a human message
    ioc_error_class     the exception or check that rejected it
    ioc_origin_topic    ioc_origin_partition    ioc_origin_offset
    ioc_replay_count    how many times it was replayed already (0 the first time)
    ioc_rejected_at     when (ISO 8601, UTC)

`ioc dlq replay --reason X` sends the originals back to their topics with
`ioc_replay_count` = n + 1; if they fail again, they come back here with that count. Each reason
has its own replay cursor (a consumer group `<client>.dlq-replay.<reason>`), so a dead letter is
replayed once, and other reasons' letters are left for later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streams.kafka_io import Brokers, read_to_end

Headers = Sequence[tuple[str, bytes]]

PREFIX = "ioc_"
REASON = "ioc_reason"
MESSAGE = "ioc_message"
ERROR_CLASS = "ioc_error_class"
ORIGIN_TOPIC = "ioc_origin_topic"
ORIGIN_PARTITION = "ioc_origin_partition"
ORIGIN_OFFSET = "ioc_origin_offset"
ORIGIN_LAST_OFFSET = "ioc_origin_last_offset"  # only for a range (reason unreadable_batch)
EVENT_SOURCE = "ioc_event_source"  # the event's identity (source, id), when it was readable
EVENT_ID = "ioc_event_id"
REPLAY_COUNT = "ioc_replay_count"
REJECTED_AT = "ioc_rejected_at"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    message: str
    error_class: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    replay_count: int = 0
    rejected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: For a range of offsets that could not be read (reason unreadable_batch): its last offset.
    last_offset: int | None = None
    #: The event's CloudEvents identity when the record decoded far enough to have one.
    event_source: str | None = None
    event_id: str | None = None

    @property
    def origin(self) -> tuple[str, int, int, int]:
        """Where it came from (topic, partition, offset) and at which replay: a batch redelivered
        after a crash sends its dead letters again, and they count once by this key."""
        return (self.topic, self.partition, self.offset, self.replay_count)

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """The original headers (minus earlier ioc_* ones) followed by ours."""
        ours = [
            (REASON, self.reason),
            (MESSAGE, self.message[:1000]),
            (ERROR_CLASS, self.error_class),
            (ORIGIN_TOPIC, self.topic),
            (ORIGIN_PARTITION, str(self.partition)),
            (ORIGIN_OFFSET, str(self.offset)),
            (REPLAY_COUNT, str(self.replay_count)),
            (REJECTED_AT, self.rejected_at.isoformat()),
        ]
        if self.last_offset is not None:
            ours.append((ORIGIN_LAST_OFFSET, str(self.last_offset)))
        if self.event_source is not None:
            ours.append((EVENT_SOURCE, self.event_source))
        if self.event_id is not None:
            ours.append((EVENT_ID, self.event_id))
        return [*original_headers(self.headers), *((k, v.encode()) for k, v in ours)]


def dlq_topic(topic_prefix: str) -> str:
    return f"{topic_prefix}.dlq"


def unique_by_origin(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """One letter per origin (see `DeadLetter.origin`), the first seen."""
    seen: set[tuple[str, int, int, int]] = set()
    unique = []
    for letter in letters:
        if letter.origin not in seen:
            seen.add(letter.origin)
            unique.append(letter)
    return unique


async def read_letters(bootstrap: Brokers, topic: str) -> list[DeadLetter]:
    """Every dead letter in `topic` up to its current end, oldest first per partition."""
    return [
        from_record(record.key, record.value, record.headers)
        async for _consumer, record in read_to_end(bootstrap, topic)
    ]


def original_headers(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers if not k.startswith(PREFIX)]


def replay_count(headers: Iterable[tuple[str, bytes]]) -> int:
    """The replay count a message carries (0 if it was never replayed)."""
    for key, value in headers:
        if key == REPLAY_COUNT:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def from_record(
    key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> DeadLetter:
    """Read a dead letter back from the DLQ topic (tolerant: missing headers become '')."""
    hdrs = list(headers)
    found = {k: v.decode(errors="replace") for k, v in hdrs if k.startswith(PREFIX)}

    def as_int(name: str) -> int:
        try:
            return int(found.get(name, "-1"))
        except ValueError:
            return -1

    try:
        rejected_at = datetime.fromisoformat(found[REJECTED_AT])
    except (KeyError, ValueError):
        rejected_at = datetime.fromtimestamp(0, UTC)
    return DeadLetter(
        reason=found.get(REASON, "unknown"),
        message=found.get(MESSAGE, ""),
        error_class=found.get(ERROR_CLASS, ""),
        topic=found.get(ORIGIN_TOPIC, ""),
        partition=as_int(ORIGIN_PARTITION),
        offset=as_int(ORIGIN_OFFSET),
        key=key,
        value=value,
        headers=tuple(original_headers(hdrs)),
        replay_count=max(0, as_int(REPLAY_COUNT)),
        rejected_at=rejected_at,
        last_offset=as_int(ORIGIN_LAST_OFFSET) if ORIGIN_LAST_OFFSET in found else None,
        event_source=found.get(EVENT_SOURCE),
        event_id=found.get(EVENT_ID),
    )


def replay_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Headers for re-sending a dead letter to its origin topic."""
    return [*letter.headers, (REPLAY_COUNT, str(letter.replay_count + 1).encode())]
