"""`ioc demo`: the simulator through a real worker into the database, and an account of it.

Steps: migrate the database, create the topics, start one `ioc worker` (a child process), run
`ioc simulate` for the given time with faults (its progress bar shows live), wait until every
sent event is accounted for, print a table per domain, stop the worker. Counts are read from
the database and the DLQ topic (before/after), not from the worker's own figures. Each run uses
a fresh seed, so its event ids are new and nothing is a duplicate of an earlier run.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from localdev.accounting import (
    Observed,
    group_lag,
    observe,
    split_expected,
    wait_until_accounted,
)
from localdev.processes import ChildCommand, wait_http_ok
from localdev.runtime import PROJECT_ROOT, RuntimeProblem, state_dir
from simulator.generate import Manifest
from sinks.migrate import migrate
from streams.net import port_is_free
from streams.pipeline import ensure_topics, registry_for
from streams.settings import Settings


@dataclass
class DemoResult:
    manifest: Manifest
    before: Observed
    after: Observed
    seconds: float

    def stored(self, domain: str) -> int:
        return self.after.stored[domain] - self.before.stored[domain]

    def dead(self, domain: str) -> Counter[str]:
        after = self.after.dead.get(domain, Counter())
        before = self.before.dead.get(domain, Counter())
        return Counter({r: after[r] - before[r] for r in after if after[r] - before[r] > 0})

    def duplicates(self, domain: str) -> int:
        return (
            self.manifest.sent.get(domain, 0)
            - self.stored(domain)
            - sum(self.dead(domain).values())
        )

    def complete(self, horizon_s: float) -> bool:
        stored, dead, duplicates = split_expected(self.manifest.expected(late_horizon_s=horizon_s))
        return all(
            self.stored(d) == stored[d]
            and self.dead(d) == +dead[d]
            and self.duplicates(d) == duplicates[d]
            for d in self.manifest.sent
        )


def run_demo(
    settings: Settings, *, duration_s: int, rate: float, faults: float, console: Console
) -> DemoResult:
    registry = registry_for(settings)
    work = state_dir(settings) / "demo"
    work.mkdir(parents=True, exist_ok=True)
    try:
        with psycopg.connect(settings.db.conninfo("owner")) as conn:
            ran = migrate(conn, settings.db, settings.storage)
    except psycopg.OperationalError as exc:
        raise RuntimeProblem(
            f"cannot reach the database ({exc}); start it with `ioc dev up`"
        ) from exc
    console.print(
        f"database {settings.db.name} (flavour {settings.db.flavour}): {len(ran)} migrations applied"
    )
    asyncio.run(ensure_topics(settings, registry))

    port = settings.stream.web_port
    if not port_is_free(port):
        raise RuntimeProblem(
            f"port {port} for the worker's web server is taken; set IOC_STREAM__WEB_PORT"
        )
    worker = ChildCommand(["worker"], work / "worker.log").start()
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/metrics", timeout=90, child=worker)
        console.print(f"worker started (pid {worker.pid}, log {worker.log_path})")
        catch_up(settings, registry, worker, console)
        demo_start = datetime.now(UTC)
        before = observe(settings, registry)
        seed = random.SystemRandom().randrange(1, 2**31)
        manifest_path = work / "manifest.json"
        started = time.monotonic()
        simulate = [
            sys.executable, "-m", "ioc", "simulate", "--rate", str(rate),
            "--duration", f"{duration_s}s", "--faults", str(faults), "--seed", str(seed),
            "--manifest", str(manifest_path),
        ]  # fmt: skip
        done = subprocess.run(simulate, cwd=PROJECT_ROOT, env=os.environ.copy(), check=False)
        if done.returncode != 0:
            raise RuntimeProblem(f"the simulator exited with {done.returncode}")
        manifest = Manifest.from_json(manifest_path.read_bytes())
        stored, dead, _ = split_expected(
            manifest.expected(late_horizon_s=settings.stream.late_horizon_s)
        )
        with console.status("waiting until every event is accounted for..."):
            after = wait_until_accounted(
                settings, registry,
                expected_dead={d: before.dead_total(d) + sum(dead[d].values()) for d in dead},
                expected_stored={d: before.stored[d] + stored[d] for d in stored},
                timeout_s=180,
            )  # fmt: skip
        seconds = time.monotonic() - started
        time.sleep(settings.stream.stats_interval_s + 1)  # one more stats window for latency
        after.latency_p95_s = observe(settings, registry, since=demo_start).latency_p95_s
    finally:
        worker.stop(30)
    return DemoResult(manifest, before, after, seconds)


def catch_up(settings: Settings, registry: Any, worker: ChildCommand, console: Console) -> None:
    """Wait until the worker has committed what was already in the topics before this demo."""
    topics = list(registry.topics().values())
    lag = asyncio.run(group_lag(settings, settings.stream.app_id, topics))
    if lag:
        console.print(f"catching up with {lag:,} events already in the topics...")
    deadline = time.monotonic() + 600
    while lag and time.monotonic() < deadline:
        if not worker.running():
            raise RuntimeProblem(f"the worker exited:\n{worker.log_tail()}")
        time.sleep(2)
        lag = asyncio.run(group_lag(settings, settings.stream.app_id, topics))
    if lag:
        raise RuntimeProblem(
            f"the worker did not catch up ({lag:,} events behind); see {worker.log_path}"
        )
    time.sleep(settings.stream.commit_interval_s + 1)


def summary_table(result: DemoResult, horizon_s: float) -> Table:
    table = Table(
        title=f"demo: {sum(result.manifest.sent.values()):,} events in {result.seconds:.0f}s"
    )
    for column in (
        "domain",
        "sent",
        "stored",
        "duplicates",
        "DLQ by reason",
        "latency p95",
        "events/s",
    ):
        table.add_column(
            column, justify="left" if column in ("domain", "DLQ by reason") else "right"
        )
    totals = Counter[str]()
    for domain in sorted(result.manifest.sent):
        sent = result.manifest.sent[domain]
        dead = result.dead(domain)
        p95 = result.after.latency_p95_s.get(domain)
        totals.update(
            sent=sent,
            stored=result.stored(domain),
            dup=result.duplicates(domain),
            dlq=sum(dead.values()),
        )
        table.add_row(
            domain, f"{sent:,}", f"{result.stored(domain):,}", f"{result.duplicates(domain):,}",
            ", ".join(f"{r} {n}" for r, n in sorted(dead.items())) or "-",
            "-" if p95 is None else f"{p95:.2f}s", f"{sent / result.seconds:,.0f}",
        )  # fmt: skip
    table.add_row(
        "all", f"{totals['sent']:,}", f"{totals['stored']:,}", f"{totals['dup']:,}", f"{totals['dlq']:,}",
        "", f"{totals['sent'] / result.seconds:,.0f}", style="bold",
    )  # fmt: skip
    table.caption = (
        "every sent event accounted for (stored + duplicates + DLQ = sent, as the manifest expects)"
        if result.complete(horizon_s)
        else "MISMATCH with the simulator's manifest: see .local/demo/"
    )
    return table
