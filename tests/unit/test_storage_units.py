"""Pure parts of the storage layer: error sorting, migration discovery, refresh windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors as pgerr
from psycopg_pool import PoolTimeout

from sinks.config import StorageSettings
from sinks.errors import ErrorKind, classify
from sinks.maintenance import _floor, merge_ranges
from sinks.migrate import (
    Applied,
    MigrationError,
    check_applied,
    load_migrations,
    migration_parameters,
)
from sinks.rows import Batch, EventRow, MeasurementRow
from sinks.writer import resolve_method
from streams.settings import load_settings


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (pgerr.AdminShutdown("terminating connection"), ErrorKind.TRANSIENT),
        (pgerr.SerializationFailure("could not serialize"), ErrorKind.TRANSIENT),
        (pgerr.DeadlockDetected("deadlock"), ErrorKind.TRANSIENT),
        (pgerr.CannotConnectNow("starting up"), ErrorKind.TRANSIENT),
        (pgerr.TooManyConnections("too many"), ErrorKind.TRANSIENT),
        (pgerr.QueryCanceled("statement timeout"), ErrorKind.TRANSIENT),
        (
            psycopg.OperationalError("server closed the connection unexpectedly"),
            ErrorKind.TRANSIENT,
        ),
        (PoolTimeout("no connection"), ErrorKind.TRANSIENT),
        (pgerr.NotNullViolation("null value"), ErrorKind.ROW),
        (pgerr.CheckViolation("no partition of relation"), ErrorKind.ROW),
        (pgerr.InvalidTextRepresentation("bad json"), ErrorKind.ROW),
        (
            psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
            ErrorKind.ROW,
        ),
        (pgerr.UndefinedTable("no such table"), ErrorKind.FATAL),
        (pgerr.InsufficientPrivilege("permission denied"), ErrorKind.FATAL),
        (ValueError("a bug"), ErrorKind.FATAL),
    ],
)
def test_errors_are_sorted_in_one_place(exc: BaseException, kind: ErrorKind) -> None:
    assert classify(exc) is kind


def test_each_flavour_gets_shared_and_its_own_migrations() -> None:
    pg = load_migrations("postgres")
    ts = load_migrations("timescale")
    shared = ["shared"] * 6  # 0004 .. 0009
    assert [m.folder for m in pg] == ["shared", "postgres", "postgres", *shared]
    assert [m.folder for m in ts] == ["shared", "timescale", "timescale", *shared]
    assert [m.version for m in pg] == [m.version for m in ts] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert pg[0] == ts[0] and pg[3:] == ts[3:]
    with pytest.raises(MigrationError):
        load_migrations("oracle")  # type: ignore[arg-type]


def test_edited_or_foreign_migrations_are_refused() -> None:
    migrations = load_migrations("postgres")
    now = datetime.now(UTC)
    good = [Applied(m.version, m.name, m.folder, m.checksum, now, 1.0) for m in migrations]
    check_applied(good, migrations, "postgres")
    edited = [good[0], Applied(2, "timeseries", "postgres", "0" * 64, now, 1.0)]
    with pytest.raises(MigrationError, match="edited after it was applied"):
        check_applied(edited, migrations, "postgres")
    with pytest.raises(MigrationError, match="other flavour"):
        check_applied(good, load_migrations("timescale"), "timescale")


def test_migration_parameters_come_from_settings() -> None:
    settings = load_settings(storage={"chunk_interval": "PT6H", "raw_retention": "P30D"})
    params = migration_parameters(settings.db, settings.storage)
    assert params["ioc.chunk_interval"] == "21600 seconds"
    assert params["ioc.raw_retention"] == "2592000 seconds"
    assert params["ioc.ingest_role"] == "ioc_ingest"


def test_write_method_auto_follows_the_flavour() -> None:
    assert resolve_method("auto", "postgres") == "copy"
    assert resolve_method("auto", "timescale") == "unnest"
    assert resolve_method("unnest", "postgres") == "unnest"


def test_refresh_windows_are_bucket_aligned_and_merged() -> None:
    t = datetime(2026, 11, 23, 10, 17, 42, tzinfo=UTC)
    assert _floor(t, timedelta(minutes=1)) == t.replace(second=0)
    assert _floor(t, timedelta(hours=1)) == t.replace(minute=0, second=0)
    ranges = [(t, t + timedelta(minutes=5)), (t - timedelta(days=1), t - timedelta(days=1)), (t, t)]
    assert merge_ranges(ranges) == [
        (t - timedelta(days=1), t - timedelta(days=1)),
        (t, t + timedelta(minutes=5)),
    ]


def _event(i: int, t: datetime) -> EventRow:
    return EventRow(f"e{i}", t, "s", "t", "d", "ent", None, None, None, None, "{}")


def _measurement(t: datetime, metric: str) -> MeasurementRow:
    return MeasurementRow(t, "d", metric, "ent", None, 1.0, None)


def test_batch_keeps_each_events_measurements_with_it() -> None:
    t = datetime.now(UTC)
    batch = Batch()
    batch.add_event(_event(0, t), [_measurement(t, "a"), _measurement(t, "b")])
    batch.add_event(_event(1, t))  # an event may have no measurements
    batch.add_event(_event(2, t), (_measurement(t, "c"),))
    assert (len(batch), batch.rows, batch.ends) == (3, 6, [2, 2, 3])
    assert [(e.id, [m.metric for m in ms]) for e, ms in batch.spans()] == [
        ("e0", ["a", "b"]), ("e1", []), ("e2", ["c"]),
    ]  # fmt: skip
    assert [m.metric for m in batch.measurements_of(2)] == ["c"]
    picked = batch.select([2, 0])
    assert [(e.id, [m.metric for m in ms]) for e, ms in picked.spans()] == [
        ("e2", ["c"]), ("e0", ["a", "b"]),
    ]  # fmt: skip
    tail = batch.slice(1, 3)
    assert (tail.ends, [m.metric for m in tail.measurements]) == ([0, 1], ["c"])
    assert batch.slice(1, 1).rows == 0
    assert Batch.of([(_event(0, t), [_measurement(t, "a")]), _event(1, t)]).ends == [1, 1]


def test_measurements_without_their_event_are_refused() -> None:
    t = datetime.now(UTC)
    m = _measurement(t, "a")
    with pytest.raises(ValueError, match="without their events"):
        Batch([], [m])
    with pytest.raises(ValueError, match="span ends"):
        Batch([_event(0, t)], [m, m], [1])  # the second measurement belongs to no event
    with pytest.raises(ValueError, match="span ends"):
        Batch([_event(0, t), _event(1, t)], [m, m], [2, 1])
    with pytest.raises(TypeError, match="add_event"):
        Batch().add_event(m)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="without an event"):
        Batch.of([m])  # type: ignore[list-item]
    batch = Batch()
    with pytest.raises(TypeError, match="MeasurementRow"):
        batch.add_event(_event(0, t), [("not", "a", "row")])  # type: ignore[list-item]
    assert (len(batch), batch.rows) == (0, 0)  # nothing half-added


def test_storage_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        StorageSettings(batch_size=0)
    with pytest.raises(ValueError):
        StorageSettings(write_method="bulk")  # type: ignore[arg-type]
