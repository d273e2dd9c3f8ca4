"""Pure parts of the storage layer: error sorting, migration discovery, refresh windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors as pgerr
from psycopg_pool import PoolTimeout

from sinks.config import StorageSettings
from sinks.errors import ErrorKind, classify
from sinks.maintenance import _floor, _merge
from sinks.migrate import (
    Applied,
    MigrationError,
    check_applied,
    load_migrations,
    migration_parameters,
)
from sinks.rows import Batch, EventRow, MeasurementRow
from sinks.timescale import resolve_method
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
    assert [m.folder for m in pg] == ["shared", "postgres"]
    assert [m.folder for m in ts] == ["shared", "timescale"]
    assert pg[0] == ts[0]
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
    assert _merge(ranges) == [
        (t - timedelta(days=1), t - timedelta(days=1)),
        (t, t + timedelta(minutes=5)),
    ]


def test_batch_sorts_rows_by_kind() -> None:
    t = datetime.now(UTC)
    e = EventRow("1", t, "s", "t", "d", "e", None, None, None, None, "{}")
    m = MeasurementRow(t, "d", "m", "e", None, 1.0, None)
    batch = Batch.of([m, e, m])
    assert (len(batch.events), len(batch.measurements), len(batch)) == (1, 2, 3)
    with pytest.raises(TypeError):
        batch.add(("not", "a", "row"))  # type: ignore[arg-type]


def test_storage_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        StorageSettings(batch_size=0)
    with pytest.raises(ValueError):
        StorageSettings(write_method="bulk")  # type: ignore[arg-type]
