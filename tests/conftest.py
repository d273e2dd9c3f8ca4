"""Shared fixtures. Integration tests use the real Kafka and PostgreSQL that `ioc dev up` starts;
if they are not reachable the test fails and says how to start them (it never skips)."""

from __future__ import annotations

import asyncio
import os

import psycopg
import pytest

from localdev.runtime import kafka_metadata_ok
from streams.settings import Settings, load_settings

START_HINT = "start them with `.venv/bin/ioc dev up` (or run `make test`, which does it for you)"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    if not asyncio.run(kafka_metadata_ok(settings.kafka.bootstrap, 5.0)):
        pytest.fail(
            f"Kafka at {settings.kafka.bootstrap} does not answer; {START_HINT}", pytrace=False
        )
    return settings.kafka.bootstrap


@pytest.fixture(scope="session")
def pg_conninfo(settings: Settings) -> str:
    conninfo = settings.db.conninfo("owner")
    try:
        with psycopg.connect(conninfo) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {settings.db.host}:{settings.db.port} does not answer ({exc}); {START_HINT}",
            pytrace=False,
        )
    return conninfo


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every IOC_* variable so a test sees only what it sets."""
    for name in list(os.environ):
        if name.startswith("IOC_"):
            monkeypatch.delenv(name)
    return monkeypatch
