"""End to end in secure mode: `ioc simulate` as the simulator principal -> the secure Kafka ->
`ioc worker` as the workers' principal -> PostgreSQL, with the broker restarted while the worker
drains. Every sent event is accounted for exactly (stored, dead-lettered by reason, duplicates),
as in tests/e2e/test_pipeline.py, and the worker rides out the restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from localdev.kafka_secure import SIMULATOR, WORKER
from localdev.processes import ChildCommand, wait_http_ok
from localdev.runtime import LocalKafka, LocalPostgres
from simulator.generate import Manifest
from streams.settings import Settings
from tests.e2e.test_pipeline import Stack, assert_accounted
from tests.secure.conftest import SecureTopics
from tests.support.database import free_port, scratch_database

pytestmark = [pytest.mark.secure, pytest.mark.e2e, pytest.mark.slow]

EVENTS = 30_000


def test_counts_hold_in_secure_mode_across_a_broker_restart(
    secure_topics: SecureTopics, secure_kafka: LocalKafka, settings: Settings, tmp_path: Path
) -> None:
    superuser = LocalPostgres(settings).superuser_conninfo()
    with scratch_database(superuser, settings.db, "ioc_secure") as dbname:
        run_settings = secure_topics.settings.model_copy(
            update={"db": settings.db.model_copy(update={"name": dbname})}
        )
        extra = {
            "IOC_DB__NAME": dbname,
            "IOC_STREAM__LATE_HORIZON_S": "3600",
            "IOC_STREAM__STATS_INTERVAL_S": "2",
            "IOC_STREAM__MAINTENANCE_INTERVAL_S": "2",
        }
        worker_env = secure_topics.env(WORKER) | extra
        stack = Stack(worker_env, run_settings, secure_topics.registry, tmp_path, [])
        stack.ioc("db", "migrate")
        port = free_port()
        worker = ChildCommand(
            ["worker"], tmp_path / "worker.log", worker_env | {"IOC_STREAM__WEB_PORT": str(port)}
        ).start()
        stack.workers.append(worker)
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/metrics", timeout=90, child=worker)
            path = tmp_path / "manifest.json"
            simulate = ChildCommand(
                ["simulate", "--count", str(EVENTS), "--fast", "--seed", "21",
                 "--faults", "0.002", "--manifest", str(path)],
                tmp_path / "simulate.log", secure_topics.env(SIMULATOR) | extra,
            ).start()  # fmt: skip
            assert simulate.wait(300) == 0, simulate.log_tail(40)
            manifest = Manifest.from_json(path.read_bytes())
            assert sum(manifest.sent.values()) == EVENTS
            time.sleep(1)
            assert secure_kafka.stop().startswith("stopped")
            time.sleep(3)
            assert secure_kafka.start().startswith("started")
            assert_accounted(stack, manifest, timeout_s=180)
            assert worker.running(), worker.log_tail()
            log = worker.log_path.read_text(errors="replace")
            assert "TopicAuthorizationFailed" not in log and "authorization" not in log.lower()
        finally:
            worker.stop(20)
