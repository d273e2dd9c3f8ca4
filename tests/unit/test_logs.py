"""A broker outage's repeated client warnings reach the log once per interval, with a count."""

from __future__ import annotations

import logging

from streams.logs import OncePerInterval


def record(name: str, msg: str, created: float) -> logging.LogRecord:
    r = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, None, None)
    r.created = created
    return r


def test_repeats_of_a_kafka_client_warning_pass_once_per_interval_then_say_how_many() -> None:
    once = OncePerInterval(60)
    passed = [
        once.filter(record("aiokafka.conn", "Unable connect to node %s", t))
        for t in range(0, 120, 1)
    ]
    assert passed.count(True) == 2 and passed[0] and passed[60]
    again = record("aiokafka.conn", "Unable connect to node %s", 120)
    assert once.filter(again) and "59 more like this" in str(again.msg)
    assert once.filter(record("aiokafka.conn", "another message", 5))  # its own template
    assert all(once.filter(record("streams.pipeline", "same", t)) for t in range(10))  # ours pass
