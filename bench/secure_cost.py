"""What Kafka secure mode costs the ingest pipeline (issue 19): bench/pipeline.py's (a), the
`ioc worker` with the default rules, on the same N simulated events, first against the local
broker in PLAINTEXT, then against the same broker restarted in secure mode (SASL/SCRAM-SHA-512
over TLS, ACLs), in one run; it prints both rates and their ratio.

    .venv/bin/ioc dev up                    # plaintext, as `make demo` leaves it
    .venv/bin/python bench/secure_cost.py [--events 300000]

In the secure half the topics are created by the operator principal, the events are produced by
the simulator principal and the worker runs as `ioc-worker`, each with only its ACLs (granted for
the run's topic prefix and consumer group). The runtime is put back in plaintext mode at the end
(`ioc dev down && ioc dev up`), also after a failure. 127.0.0.1 only; bounded by --events.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "bench"))

from pipeline import PARTITIONS, run_ours, scratch_run, simulation  # noqa: E402

from localdev.kafka_secure import ADMIN, OPERATOR, SIMULATOR, WORKER  # noqa: E402
from localdev.runtime import LocalKafka  # noqa: E402
from simulator.produce import produce  # noqa: E402
from streams.kafka_io import create_topics  # noqa: E402
from streams.pipeline import ensure_topics  # noqa: E402
from streams.settings import KafkaSettings, Settings, load_settings  # noqa: E402
from tests.support.worker_stack import delete_topics  # noqa: E402


def ioc(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "ioc", *args], capture_output=True, text=True,
                          check=False, cwd=PROJECT_ROOT)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"ioc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


async def plaintext(settings: Settings, logs: Path, n: int, start: datetime) -> float:
    with scratch_run(settings, logs, "plain") as run:
        await create_topics(settings.kafka.bootstrap, dict.fromkeys(run.topics, PARTITIONS))
        try:
            sim = simulation(n, run.prefix, rate=2000.0, start=start)
            await produce(sim.messages(), settings.kafka.bootstrap)
            return await run_ours(run, n, None, {}, "plain")
        finally:
            await delete_topics(settings.kafka.bootstrap, f"{run.prefix}.")


async def secure(settings: Settings, logs: Path, n: int, start: datetime) -> float:
    kafka = LocalKafka(settings.model_copy(
        update={"dev": settings.dev.model_copy(update={"kafka_secure": True})}
    ))  # fmt: skip
    admin = kafka.client(ADMIN)
    assert isinstance(admin, KafkaSettings), "the broker did not start in secure mode"
    with scratch_run(settings, logs, "secure") as run:
        group = f"bench-ours-secure-{uuid.uuid4().hex[:6]}"
        as_run = settings.model_copy(update={
            "kafka": admin.model_copy(update={"topic_prefix": run.prefix}),
            "stream": settings.stream.model_copy(update={"app_id": group}),
        })  # fmt: skip
        await asyncio.to_thread(kafka.grant, as_run)  # it runs its own event loop

        def principal(user: str) -> KafkaSettings:
            client = kafka.client(user)
            assert isinstance(client, KafkaSettings)
            return client.model_copy(update={"topic_prefix": run.prefix})

        await ensure_topics(as_run.model_copy(update={"kafka": principal(OPERATOR)}))
        try:
            run.settings = as_run  # the drain check reads offsets as the admin
            sim = simulation(n, run.prefix, rate=2000.0, start=start)
            await produce(sim.messages(), principal(SIMULATOR))
            env = kafka.secure_files.client_env(WORKER, admin.bootstrap)
            return await run_ours(run, n, None, env, "secure", group=group)
        finally:
            await delete_topics(admin, f"{run.prefix}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()
    settings = load_settings()
    if LocalKafka(settings).running_mode() == "secure":
        sys.exit("start from a plaintext runtime: .venv/bin/ioc dev down && .venv/bin/ioc dev up")
    logs = Path(tempfile.mkdtemp(prefix="ioc-bench-secure-"))
    start = datetime.now(UTC) - timedelta(seconds=args.events / 2000)
    rates: dict[str, float] = {}
    try:
        t = time.monotonic()
        rates["plaintext"] = asyncio.run(plaintext(settings, logs, args.events, start))
        print(f"  plaintext {rates['plaintext']:10,.0f} events/s ({time.monotonic() - t:.0f}s)",
              flush=True)  # fmt: skip
        t = time.monotonic()
        ioc("dev", "down")
        ioc("dev", "up", "--secure")
        print(f"  broker restarted in secure mode ({time.monotonic() - t:.0f}s)", flush=True)
        t = time.monotonic()
        rates["secure"] = asyncio.run(secure(settings, logs, args.events, start))
        print(f"  secure    {rates['secure']:10,.0f} events/s ({time.monotonic() - t:.0f}s)",
              flush=True)  # fmt: skip
    finally:
        ioc("dev", "down")
        ioc("dev", "up")
    print(f"logs: {logs}")
    print(f"\n{args.events:,} events, all domains, 8 topics x {PARTITIONS} partitions, one worker"
          " with the default rules, the same events in both halves")  # fmt: skip
    print(f"  (a) PLAINTEXT                      {rates['plaintext']:10,.0f} events/s")
    print(f"  (a) SASL_SSL, SCRAM-SHA-512, ACLs  {rates['secure']:10,.0f} events/s")
    print(f"  secure / plaintext = {rates['secure'] / rates['plaintext']:.2f}")


if __name__ == "__main__":
    main()
