"""Dead-letter headers round-trip, replay counting, and the pipeline's health figures."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from streams import dlq
from streams.metrics import PipelineMetrics, quantile


def letter(**changes: object) -> dlq.DeadLetter:
    base: dict[str, object] = {
        "reason": "bad_json",
        "message": "Expecting value: line 1 column 1",
        "error_class": "JSONDecodeError",
        "topic": "city.environment.events",
        "partition": 3,
        "offset": 1234,
        "key": b"station-7",
        "value": b"{not json",
        "headers": (("ce_type", b"vn.daklak.environment.air_quality.v1"),),
        "rejected_at": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    }
    base.update(changes)
    return dlq.DeadLetter(**base)  # type: ignore[arg-type]


def test_dead_letter_round_trips_through_kafka_headers() -> None:
    original = letter()
    back = dlq.from_record(original.key, original.value, original.kafka_headers())
    assert back == original


def test_original_bytes_and_headers_are_untouched() -> None:
    original = letter(value=b"\x00\xff raw", headers=(("ce_id", b"a"), ("x-custom", b"\x01")))
    headers = original.kafka_headers()
    assert headers[:2] == [("ce_id", b"a"), ("x-custom", b"\x01")]
    assert dlq.from_record(b"k", original.value, headers).value == b"\x00\xff raw"


def test_replay_increments_the_count_and_drops_old_ioc_headers() -> None:
    first = letter()
    replayed = dlq.replay_headers(first)
    assert dlq.replay_count(replayed) == 1
    assert not any(k in (dlq.REASON, dlq.ORIGIN_OFFSET) for k, _ in replayed)
    # it fails again: the new dead letter carries the replay count
    again = letter(replay_count=dlq.replay_count(replayed), headers=tuple(replayed))
    back = dlq.from_record(again.key, again.value, again.kafka_headers())
    assert back.replay_count == 1
    assert dlq.replay_count(dlq.replay_headers(back)) == 2


OUR_HEADERS = [
    dlq.REASON, dlq.MESSAGE, dlq.ERROR_CLASS, dlq.ORIGIN_TOPIC, dlq.ORIGIN_PARTITION,
    dlq.ORIGIN_OFFSET, dlq.ORIGIN_LAST_OFFSET, dlq.REPLAY_COUNT, dlq.REJECTED_AT,
]  # fmt: skip
header_names = st.one_of(st.sampled_from(OUR_HEADERS), st.text(max_size=20))
header_values = st.one_of(
    st.binary(max_size=20), st.integers(-3, 10**6).map(lambda n: str(n).encode())
)


@given(st.lists(st.tuples(header_names, header_values), max_size=8))
def test_any_headers_read_back_as_a_letter_that_round_trips(
    headers: list[tuple[str, bytes]],
) -> None:
    """A DLQ reader meets headers written by anyone: it never raises, keeps the original headers
    untouched, reads the replay count when it is a count (else 0), and what it read re-encodes
    to the same letter."""
    back = dlq.from_record(b"k", b"v", headers)
    assert back.headers == tuple((k, v) for k, v in headers if not k.startswith("ioc_"))
    counts = [v for k, v in headers if k == dlq.REPLAY_COUNT]
    if not counts:
        assert back.replay_count == 0
    elif re.fullmatch(rb"-?[0-9]+", counts[-1]):  # as written by replay_headers: the last wins
        assert back.replay_count == max(0, int(counts[-1]))
    else:  # junk: read as 0, or as whatever int() makes of it (" 3", "+3"), never negative
        assert back.replay_count >= 0
    again = dlq.from_record(back.key, back.value, back.kafka_headers())
    assert again == back


def test_window_counts_and_latency_quantiles() -> None:
    metrics = PipelineMetrics()
    metrics.topic_domain["city.transport.events"] = "transport"
    metrics.record_batch(
        "transport", received=100, stored=90, duplicates=5,
        rejected=["bad_json"] * 3 + ["too_late"] * 2,
        latencies_s=[i / 100 for i in range(1, 101)],
    )  # fmt: skip
    metrics.record_lag("city.transport.events", 0, 40)
    metrics.record_lag("city.transport.events", 1, 2)
    (row,) = metrics.take_window()
    assert (row.received, row.stored, row.duplicates, row.rejected) == (100, 90, 5, 5)
    assert row.rejected_by_reason == {"bad_json": 3, "too_late": 2}
    assert row.lag == 42
    assert row.latency_p50_s == 0.5 and row.latency_p95_s == 0.95 and row.latency_p99_s == 0.99
    (empty,) = metrics.take_window()  # new window: counts reset, lag persists
    assert empty.received == 0 and empty.lag == 42 and empty.latency_p95_s is None


def test_exposition_is_cumulative_and_parses() -> None:
    metrics = PipelineMetrics()
    for _ in range(2):
        metrics.record_batch(
            "health", received=11, stored=10, duplicates=0, rejected=["bad_json"],
            latencies_s=[0.2] * 10,
        )  # fmt: skip
    metrics.take_window()  # a window taken for pipeline_stats leaves the cumulative figures
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("ioc_events_total", (("domain", "health"), ("outcome", "stored")))] == 20
    assert samples[("ioc_events_total", (("domain", "health"), ("outcome", "received")))] == 22
    rejected = ("ioc_events_rejected_total", (("domain", "health"), ("reason", "bad_json")))
    assert samples[rejected] == 2
    bucket = "ioc_end_to_end_latency_seconds_bucket"
    assert samples[(bucket, (("domain", "health"), ("le", "0.25")))] == 20
    assert samples[(bucket, (("domain", "health"), ("le", "0.1")))] == 0
    assert samples[(bucket, (("domain", "health"), ("le", "+Inf")))] == 20  # cumulative
    assert samples[("ioc_end_to_end_latency_seconds_sum", (("domain", "health"),))] == (
        pytest.approx(4.0)
    )


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = PipelineMetrics(), PipelineMetrics()
    first.record_batch("health", received=1, stored=1, duplicates=0, rejected=[], latencies_s=[])
    assert first.registry is not REGISTRY and second.registry is not REGISTRY
    assert b'domain="health"' in first.exposition()[0]
    assert b'domain="health"' not in second.exposition()[0]


def test_quantile_nearest_rank() -> None:
    assert quantile([1.0], 0.99) == 1.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
