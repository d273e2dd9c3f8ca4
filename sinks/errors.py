"""Errors from the database, sorted once, here, into what to do about them.

- transient: the database or the network, not the data (connection lost, server shutting down or
  starting, serialization failure, deadlock, lock or statement timeout, too many connections, pool
  exhausted). Retry the same batch with backoff; after the last try raise `Backpressure`.
- row: the data (a value the schema rejects: NOT NULL, CHECK, no partition for its time, bad
  encoding, out-of-range number). Isolate the bad rows by bisecting and return them as rejected.
- fatal: anything else (missing table, missing privilege, a bug). Not the rows' fault, and retrying
  will not help: raised to the caller as is, so that no batch is sent to the DLQ for it.
"""

from __future__ import annotations

from enum import Enum

import psycopg
from psycopg import errors as pgerr
from psycopg_pool import PoolTimeout


class ErrorKind(Enum):
    TRANSIENT = "transient"
    ROW = "row"
    FATAL = "fatal"


class Backpressure(Exception):
    """The database is unavailable: the batch is NOT stored. Keep it, wait and write it again."""


TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")  # connection, rollback, resources, operator
TRANSIENT_SQLSTATES = {"55P03", "55006", "58000", "58030"}  # lock not available, object in use, I/O
ROW_SQLSTATE_CLASSES = ("22", "23")  # data exception, integrity constraint violation


def classify(exc: BaseException) -> ErrorKind:
    """The one place that decides whether an error is transient, a bad row, or fatal."""
    if isinstance(exc, PoolTimeout | TimeoutError | ConnectionError):
        return ErrorKind.TRANSIENT
    if not isinstance(exc, psycopg.Error):
        return ErrorKind.FATAL
    state = exc.sqlstate
    if state is None:
        # Raised by psycopg itself: a lost connection, or a value it cannot send (e.g. NUL in text).
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return ErrorKind.TRANSIENT
        if isinstance(exc, psycopg.DataError):
            return ErrorKind.ROW
        return ErrorKind.FATAL
    if isinstance(exc, pgerr.QueryCanceled) or state.startswith(TRANSIENT_SQLSTATE_CLASSES):
        return ErrorKind.TRANSIENT
    if state in TRANSIENT_SQLSTATES:
        return ErrorKind.TRANSIENT
    if state.startswith(ROW_SQLSTATE_CLASSES):
        return ErrorKind.ROW
    return ErrorKind.FATAL
