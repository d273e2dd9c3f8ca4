"""A dead letter survives the trip through Kafka headers: what `ioc dlq show` and replay read."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.dlq import DeadLetter, from_record, replay_headers


def test_headers_round_trip_with_range_and_event_identity() -> None:
    letter = DeadLetter(
        reason="unreadable_batch", message="CRC mismatch", error_class="CorruptRecordError",
        topic="city.environment.events", partition=3, offset=4216, key=None, value=None,
        headers=(("ce_id", b"x"), ("ioc_reason", b"old")), replay_count=2,
        rejected_at=datetime(2026, 7, 1, tzinfo=UTC), last_offset=4300,
        event_source="urn:station:a", event_id="1",
    )  # fmt: skip
    back = from_record(letter.key, letter.value, letter.kafka_headers())
    assert (back.reason, back.offset, back.last_offset) == ("unreadable_batch", 4216, 4300)
    assert (back.event_source, back.event_id, back.replay_count) == ("urn:station:a", "1", 2)
    assert back.headers == (("ce_id", b"x"),)  # the original's, without earlier ioc_* headers
    assert ("ioc_replay_count", b"3") in replay_headers(back)


def test_a_letter_without_range_or_identity_reads_back_without_them() -> None:
    letter = DeadLetter("bad_json", "not JSON", "envelope", "t", 0, 7, b"k", b"{", ())
    back = from_record(letter.key, letter.value, letter.kafka_headers())
    assert (back.last_offset, back.event_source, back.event_id) == (None, None, None)
    assert (back.topic, back.partition, back.offset, back.value) == ("t", 0, 7, b"{")
