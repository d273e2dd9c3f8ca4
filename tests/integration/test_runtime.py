"""The local runtime for real: Kafka and PostgreSQL started by the project's own scripts.

Tests that stop and start components use a second, private runtime (own state dir and ports
under .local/test-runtime-*) so they never disturb the shared one that `ioc dev up` started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from psycopg_pool import ConnectionPool

from localdev.runtime import PROJECT_ROOT, LocalPostgres, state_dir
from localdev.smoke import consume, ensure_topic, produce, run_smoke
from streams.settings import Settings
from tests.support.database import free_port

pytestmark = pytest.mark.integration


def ioc(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioc", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=PROJECT_ROOT, check=False,
    )  # fmt: skip


def test_ten_thousand_messages_through_a_consumer_group(
    settings: Settings, kafka_bootstrap: str, pg_conninfo: str
) -> None:
    report = asyncio.run(run_smoke(settings, 10_000))
    assert report.produced == 10_000
    assert report.consumed == 10_000
    assert report.stored == 10_000


def test_create_topic_with_six_partitions(kafka_bootstrap: str) -> None:
    topic = f"test.partitions.{uuid.uuid4().hex[:8]}"

    async def scenario() -> int:
        assert await ensure_topic(kafka_bootstrap, topic, 6) is True
        assert await ensure_topic(kafka_bootstrap, topic, 6) is False  # already there
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            (described,) = await admin.describe_topics([topic])
            await admin.delete_topics([topic])
        finally:
            await admin.close()
        return len(described["partitions"])

    assert asyncio.run(scenario()) == 6


def test_sql_round_trip_through_a_pool(pg_conninfo: str) -> None:
    with ConnectionPool(pg_conninfo, min_size=2, max_size=4, open=True) as pool:
        values = []
        for n in range(8):
            with pool.connection() as conn:
                row = conn.execute("select %s::int * 2, now()", (n,)).fetchone()
                assert row is not None
                values.append(row[0])
                assert row[1].tzinfo is not None
        assert values == [n * 2 for n in range(8)]
        assert pool.get_stats()["pool_size"] <= 4


def test_up_twice_is_idempotent(kafka_bootstrap: str, pg_conninfo: str) -> None:
    result = ioc("dev", "up")
    assert result.returncode == 0, result.stderr
    assert "kafka: already running" in result.stdout
    assert "postgres: already running" in result.stdout
    status = ioc("dev", "status")
    assert status.returncode == 0
    assert "Apache Kafka 3.9" in status.stdout and "PostgreSQL 15" in status.stdout


@pytest.fixture
def private_runtime() -> Iterator[dict[str, str]]:
    """Env for a second runtime with its own state dir and ports; torn down afterwards."""
    name = f"test-runtime-{uuid.uuid4().hex[:6]}"
    state = PROJECT_ROOT / ".local" / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env |= {
        "IOC_DEV__STATE_DIR": str(state),
        "IOC_KAFKA__BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "IOC_DEV__KAFKA_CONTROLLER_PORT": str(free_port()),
        "IOC_DEV__KAFKA_HEAP": "384m",
        "IOC_DB__PORT": str(free_port()),
    }
    try:
        yield env
    finally:
        ioc("dev", "down", env=env)
        cluster = (state / "pg").resolve()  # outside the checkout when postgres cannot reach it
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(cluster, ignore_errors=True)


def test_down_then_up_keeps_data(private_runtime: dict[str, str]) -> None:
    env = private_runtime
    started = ioc("dev", "up", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "kafka: started" in started.stdout and "postgres: started" in started.stdout

    bootstrap = env["IOC_KAFKA__BOOTSTRAP"]
    conninfo = Settings(
        db={"port": int(env["IOC_DB__PORT"])}  # type: ignore[arg-type]
    ).db.conninfo("owner")
    with psycopg.connect(conninfo) as conn:
        conn.execute("create table kept (n int primary key)")
        conn.execute("insert into kept select generate_series(1, 100)")
    values = [f"kept-{n}".encode() for n in range(500)]
    asyncio.run(ensure_topic(bootstrap, "kept.topic", 3))
    asyncio.run(produce(bootstrap, "kept.topic", values, [b"k"] * len(values)))

    stopped = ioc("dev", "down", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "kafka: stopped" in stopped.stdout and "postgres: stopped" in stopped.stdout
    assert ioc("dev", "status", "--quiet", env=env).returncode == 1

    again = ioc("dev", "up", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("select count(*), sum(n) from kept").fetchone()
    assert row == (100, 5050)
    read = asyncio.run(consume(bootstrap, "kept.topic", "kept-reader", len(values), timeout=30))
    assert sorted(read) == sorted(values)


@pytest.mark.parametrize("component", ["kafka", "postgres"])
def test_port_conflict_names_the_port_and_the_setting(
    private_runtime: dict[str, str], component: str
) -> None:
    env = private_runtime
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        if component == "kafka":
            env["IOC_KAFKA__BOOTSTRAP"] = f"127.0.0.1:{port}"
            setting = "IOC_KAFKA__BOOTSTRAP"
        else:
            env["IOC_DB__PORT"] = str(port)
            setting = "IOC_DB__PORT"
        result = ioc("dev", "up", env=env)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert f"port {port}" in message
    assert setting in message
    assert "Traceback" not in result.stderr


async def broker_log_dirs(bootstrap: str) -> str:
    """The `log.dirs` of the broker that answers at `bootstrap`, as it reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (broker, *_) = (await admin.describe_cluster())["brokers"]
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(broker["node_id"]))]
        )
    finally:
        await admin.close()
    (resource,) = response.resources
    return dict(entry[:2] for entry in resource[4])["log.dirs"]


def test_the_running_servers_keep_their_state_under_the_state_dir(
    settings: Settings, kafka_bootstrap: str, pg_conninfo: str
) -> None:
    """The Kafka and PostgreSQL that answer are the ones `ioc dev up` started for this state
    dir (`.local/` by default): each server says where its data is, and git ignores it."""
    root = state_dir(settings)
    with psycopg.connect(LocalPostgres(settings).superuser_conninfo()) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    assert Path(row[0]).resolve() == (root / "pg" / "data").resolve()
    assert Path(asyncio.run(broker_log_dirs(kafka_bootstrap))) == root / "kafka" / "data"
    if root.resolve().is_relative_to(PROJECT_ROOT):
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(root)], cwd=PROJECT_ROOT, check=False
        )
        assert ignored.returncode == 0, f"git does not ignore {root}"
