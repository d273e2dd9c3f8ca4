"""The issue's pipeline benchmark: the same N simulated events through four consumers, one run.

    make bench BENCH_ARGS="--events 1000000"     (installs the `bench` extra into .venv-bench)
    .venv-bench/bin/python bench/pipeline.py [--events 1000000] [--naive-seconds 60]
        [--latency-seconds 40] [--only a,r,b,c,d,latency] [--profile FILE] [--worker-env K=V]
        [--rounds K] [--together K]

(a), (b), (c) and the latency run need only the project; (d) needs Quix Streams and --profile
py-spy (the `bench` extra): without them it stops before it starts and says so. A child that
dies is reported with its exit code and the end of its log.

N events (all domains, no faults) are generated once by the simulator as a backfill ending now
and produced once into fresh topics (8 x 6 partitions); each consumer below reads them from the
start with its own consumer group and writes to its own scratch database (migrated schema):

  a  our pipeline: one `ioc worker` child (Faust, per-domain ingest agents, split_batch,
     EventSink, the default rules in the write transaction); drain time = worker ready
     (/metrics answers) -> the group's lag is 0.
  r  the same with the rules off (IOC_RULES__ENABLED=false): a/r is what the rules cost.
     One pair of runs on a shared 2-core machine moves by +-0.1; --rounds K runs the pair K
     times in alternating order, each in a fresh database, and prints a/r per round and their
     median, and the worker's CPU per event in each. --together K also runs (a) and (r) at the
     same time, K times (fresh databases, new groups, the same topics): both see the machine as
     it is at that moment, and a/r over the interval where both run is the ratio of their costs
     per event. Figures in docs/performance.md.
  b  naive Faust: Faust's defaults, one agent per topic iterating event by event, one psycopg
     INSERT per row (the event and each of its measurements), autocommit; stopped after
     --naive-seconds, its rate extrapolated from the events stored in that time.
  c  raw ceiling: a plain aiokafka getmany loop doing only COPY of the raw values into an
     unindexed table (no decoding), offsets committed after each COPY transaction.
  d  Quix Streams: one StreamingDataFrame per topic into a BatchingSink that calls the same
     split_batch (decode, validation, zones) and EventSink.write; Quix commits after the
     sink flushed, as we do.

Then the latency run: fresh topics and database, one worker, the simulator paced at 2,000
events/s for --latency-seconds; p99 of event time -> database (events.ingest_time, the write
transaction's start) over all stored events, and the worst per-window p99 the worker wrote to
pipeline_stats (event time -> commit).

Prints events/s and the ratios a/b, a/c, a/d. Everything it creates (databases, topics, groups'
offsets go with the topics) is removed at the end. `--profile FILE` attaches py-spy to the
worker of (a) and writes collapsed stacks to FILE. Not a test: nothing is asserted.

Measured 2026-11-23 (2 cores shared by the worker, the broker and PostgreSQL 15), 1,000,000 events,
two full runs after RecordChunks, the cheaper decode and append-only measurements:
  run 1: a 24,543 events/s (worker 0.79 cores, PostgreSQL 0.58, Kafka 0.03), b 931, c 126,598,
         d 11,488; a/b 26.4, a/c 0.19, a/d 2.14; p99 at 2,000 events/s 0.62 s to the write,
         worst 2 s window p99 to the commit 1.18 s.
  run 2: a 20,127 (worker 0.76, PostgreSQL 0.59, Kafka 0.11), b 1,122, c 115,725, d 10,015;
         a/b 17.9, a/c 0.17, a/d 2.01; p99 0.57 s, worst window 0.75 s.
  (a) alone, 600k events, four runs in a row: 20,150-22,034 events/s (knobs: 64-chunk buffers
  and 10,000-event batches changed nothing beyond the noise).
Before (same day, per-record Faust path, keyed measurements): a 11,042, b 1,189, c 120,329,
d 9,514. (a)'s clock starts when the worker answers, (c)'s and (d)'s at their first fetched /
stored batch, so the ratios favour b, c and d slightly. The worker is bound by its one Python
thread (GIL): ~35 us of CPU per event (decode + validation ~40% of the main thread, the sink's
COPY rows ~20%, aiokafka's record parsing in the consumer thread ~15% of the GIL), PostgreSQL
~28 us per event on the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from procstat import cpu_use  # noqa: E402

from domains import Registry  # noqa: E402
from geo import ZoneIndex  # noqa: E402
from localdev.processes import ChildCommand, wait_http_ok  # noqa: E402
from localdev.runtime import LocalPostgres  # noqa: E402
from simulator.config import SimulatorConfig  # noqa: E402
from simulator.generate import Simulation  # noqa: E402
from simulator.produce import produce  # noqa: E402
from sinks.migrate import migrate  # noqa: E402
from streams.faust_ext import faust_datadir  # noqa: E402
from streams.kafka_io import connect_options, create_topics  # noqa: E402
from streams.settings import Settings, load_settings  # noqa: E402
from tests.support.database import free_port, scratch_database  # noqa: E402

PARTITIONS = 6
SMALL_RUN = 200_000  # below this the figures say that everything runs, not how fast


@dataclass
class Run:
    """One scratch world: settings for a topic prefix and a database."""

    settings: Settings
    prefix: str
    dbname: str
    logs: Path

    @property
    def registry(self) -> Registry:
        return Registry(self.settings.domains.namespace, self.prefix)

    @property
    def topics(self) -> list[str]:
        return list(self.registry.topics().values())

    def env(self, group: str, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
        return base | {
            "IOC_DB__NAME": self.dbname,
            "IOC_DB__PORT": str(self.settings.db.port),
            "IOC_KAFKA__BOOTSTRAP": self.settings.kafka.bootstrap,
            "IOC_KAFKA__TOPIC_PREFIX": self.prefix,
            "IOC_STREAM__APP_ID": group,
            "IOC_LOG_LEVEL": "WARNING",
            **extra,
        }

    def conninfo(self, role: str = "ingest") -> str:
        db = self.settings.db.model_copy(update={"name": self.dbname})
        return db.conninfo(role)  # type: ignore[arg-type]


@dataclass
class Figures:
    rates: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    p99_direct_s: float | None = None
    p99_stats_s: float | None = None
    latency_events: int = 0
    incident_p95_s: float | None = None
    incidents: int = 0
    #: --rounds: (rate of a, rate of r) per round
    rounds: list[tuple[float, float]] = field(default_factory=list)
    #: --together: (a/s, r/s, seconds) per run of the two at once
    together: list[tuple[float, float, float]] = field(default_factory=list)
    #: --rounds: the worker's CPU us per event in (a) and in (r), per round
    worker_us: list[tuple[float, float]] = field(default_factory=list)


# -- setup ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def scratch_run(settings: Settings, logs: Path, tag: str) -> Iterator[Run]:
    superuser = LocalPostgres(settings).superuser_conninfo()
    with scratch_database(superuser, settings.db, f"ioc_bench_{tag}") as dbname:
        run = Run(settings, f"bench{uuid.uuid4().hex[:6]}", dbname, logs)
        db = settings.db.model_copy(update={"name": dbname})
        with psycopg.connect(db.conninfo("owner")) as conn:
            migrate(conn, db, settings.storage)
        yield run


def simulation(count: int, prefix: str, *, rate: float, start: datetime) -> Simulation:
    config = SimulatorConfig(count=count, seed=7, rate=rate, start=start, topic_prefix=prefix)
    return Simulation(config, Registry(topic_prefix=prefix), ZoneIndex.from_file())


#: Consumer groups of the Faust apps started here: each leaves a `<group>-__assignor-__leader` topic.
FAUST_GROUPS: list[str] = []


async def delete_topics(bootstrap: str, prefixes: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    leaders = {f"{group}-__assignor-__leader" for group in FAUST_GROUPS}
    try:
        names = [
            t for t in await admin.list_topics() if t.split(".")[0] in prefixes or t in leaders
        ]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def committed(admin: AIOKafkaAdminClient, group: str, topics: set[str]) -> int:
    """Messages of `topics` that `group` has committed."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:  # a fresh cluster's offsets topic
        return 0
    return sum(o.offset for tp, o in offsets.items() if tp.topic in topics)


async def wait_drained(
    run: Run, group: str, child: ChildCommand | None, limit_s: float, total: int
) -> float:
    """When `group` has committed all `total` messages of the run's (fresh, fully produced)
    topics. One admin client, polled every 0.5 s: the poller must not steal the CPU it measures."""
    admin = AIOKafkaAdminClient(**connect_options(run.settings.kafka))  # SASL/TLS if set
    await admin.start()
    topics = set(run.topics)
    try:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if child is not None and not child.running():
                raise child_failed(child, f"group {group} not drained")
            if await committed(admin, group, topics) >= total:
                return time.monotonic()
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    raise TimeoutError(f"group {group} not drained within {limit_s:.0f}s")


def cpu_seconds(worker: int) -> dict[str, float]:
    """CPU seconds used so far: the worker process, PostgreSQL (live + reaped backends), Kafka."""
    out = {"worker": 0.0, "postgres": 0.0, "kafka": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        use = cpu_use(pid)
        if use is None:
            continue
        if int(pid) == worker:
            out["worker"] += use.own_s
        elif use.name.startswith("postgres"):
            out["postgres"] += use.own_s + use.reaped_children_s
        elif use.name == "java":
            out["kafka"] += use.own_s
    return out


def cpu_note(worker: int, before: dict[str, float], seconds: float) -> str:
    after = cpu_seconds(worker)
    return ", ".join(f"{k} {(after[k] - before[k]) / seconds:.2f}" for k in after) + " cores"


#: The worker's CPU microseconds per event in each run of ours (key: a, r, a1, r1, ...).
WORKER_US: dict[str, float] = {}


def count_events(run: Run) -> int:
    with psycopg.connect(run.conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def child_failed(child: ChildCommand, what: str) -> RuntimeError:
    """`what` went wrong with `child`: whether it died (and how) or still runs, and the end of
    its log (its stdout and stderr), so an ImportError in a child is not hidden."""
    code = child.proc.poll() if child.proc is not None else None
    if code is None:
        state = "still running"
    elif code < 0:
        state = f"killed by signal {-code}"
    else:
        state = f"exited with code {code}"
    return RuntimeError(
        f"{what}: `{' '.join(child.args)}` (pid {child.pid}) {state}; "
        f"the end of {child.log_path}:\n{child.log_tail(25)}"
    )


def missing_for(only: set[str], profile: Path | None) -> list[str]:
    """What the chosen runs need that is not installed (the `bench` extra: `make bench`)."""
    missing = []
    if "d" in only and importlib.util.find_spec("quixstreams") is None:
        missing.append("(d) needs Quix Streams (quixstreams)")
    if profile is not None and not (Path(sys.executable).parent / "py-spy").exists():
        missing.append("--profile needs py-spy")
    return missing


# -- (a) our pipeline ----------------------------------------------------------------------------
def start_ours(
    run: Run, key: str, extra_env: dict[str, str], group: str | None = None
) -> tuple[ChildCommand, str, int]:
    """An `ioc worker` child on `run` (its group recorded for clean-up); returns it, its group
    and its web port."""
    group = group or f"bench-ours-{key}-{uuid.uuid4().hex[:6]}"
    FAUST_GROUPS.append(group)
    port = free_port()
    env = run.env(group, IOC_STREAM__WEB_PORT=str(port), **extra_env)
    return ChildCommand(["worker"], run.logs / f"worker-{key}.log", env).start(), group, port


async def run_ours(
    run: Run, n: int, profile: Path | None, extra_env: dict[str, str], key: str = "a",
    group: str | None = None,
) -> float:  # fmt: skip
    worker, group, port = start_ours(run, key, extra_env, group)
    spy = None
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/metrics", timeout=90, child=worker)
        started = time.monotonic()
        cpu = cpu_seconds(worker.pid)
        if profile is not None:
            spy = ChildCommand(
                ["record", "--pid", str(worker.pid), "--format", "raw", "--output", str(profile),
                 "--rate", "200", "--nonblocking", "--idle"],
                run.logs / "py-spy.log", program=[str(Path(sys.executable).parent / "py-spy")],
            ).start()  # fmt: skip
        ended = await wait_drained(run, group, worker, limit_s=max(120, n / 2000), total=n)
        WORKER_US[key] = (cpu_seconds(worker.pid)["worker"] - cpu["worker"]) / n * 1e6
        print(f"  {key}: cpu {cpu_note(worker.pid, cpu, ended - started)}", flush=True)
        return n / (ended - started)
    finally:
        if spy is not None:  # SIGINT makes py-spy write its profile
            os.killpg(spy.pid, signal.SIGINT)
            spy.wait(30)
        worker.stop(30)


# -- (b) naive Faust -----------------------------------------------------------------------------
NAIVE_EVENT = (
    "INSERT INTO events (time, id, source, type, domain, entity_id, zone_id, lon, lat, subject,"
    " data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
NAIVE_MEASUREMENT = (
    "INSERT INTO measurements (time, domain, metric, entity_id, zone_id, value, unit)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def naive_worker_main() -> None:
    """Child process of (b): what a tutorial would write, with Faust's defaults."""
    import faust
    import orjson

    from domains import Decoder, Event

    settings = load_settings()
    registry = Registry(settings.domains.namespace, settings.kafka.topic_prefix)
    decoder = Decoder(registry)
    zones = ZoneIndex.from_file()
    app = faust.App(
        settings.stream.app_id, broker=f"kafka://{settings.kafka.bootstrap}",
        value_serializer="raw", consumer_auto_offset_reset="earliest", web_enabled=False,
        autodiscover=False, datadir=faust_datadir(settings),
    )  # fmt: skip
    conns: dict[str, psycopg.AsyncConnection[Any]] = {}

    for domain, topic_name in registry.topics().items():

        async def ingest(stream: Any, domain: str = domain) -> None:
            if domain not in conns:
                conns[domain] = await psycopg.AsyncConnection.connect(
                    settings.db.conninfo("ingest"), autocommit=True
                )
            conn = conns[domain]
            async for event in stream.events():
                msg = event.message
                headers = [(k, bytes(v)) for k, v in (msg.headers or ())]
                d = decoder.decode(msg.value, headers, now=datetime.now(UTC))
                if not isinstance(d, Event):
                    continue
                zone = d.zone_id or (zones.lookup([d.lon], [d.lat])[0] if d.lon else None)
                cur = await conn.execute(
                    NAIVE_EVENT,
                    (d.time, d.id, d.source, d.type, domain, d.entity_id, zone, d.lon, d.lat,
                     d.subject, orjson.dumps(d.data).decode()),
                )  # fmt: skip
                if cur.rowcount != 1:  # a duplicate event: its measurements are stored
                    continue
                for metric, value, unit in d.measurements():
                    await conn.execute(
                        NAIVE_MEASUREMENT, (d.time, domain, metric, d.entity_id, zone, value, unit)
                    )

        app.agent(app.topic(topic_name), name=f"naive-{domain}")(ingest)

    worker = faust.Worker(app, loglevel="WARNING")
    worker.execute_from_commandline()


async def run_naive(run: Run, seconds: float) -> float:
    group = f"bench-naive-{uuid.uuid4().hex[:6]}"
    FAUST_GROUPS.append(group)
    env = run.env(group)
    child = ChildCommand(
        [__file__, "_naive"], run.logs / "naive.log", env, program=[sys.executable]
    ).start()
    try:
        deadline = time.monotonic() + 120
        first = 0
        while first == 0:  # the clock starts at the first stored event (after the rebalance)
            if not child.running() or time.monotonic() > deadline:
                raise child_failed(child, "the naive worker stored nothing")
            await asyncio.sleep(0.5)
            first = await asyncio.to_thread(count_events, run)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        stored = await asyncio.to_thread(count_events, run)
        return (stored - first) / (time.monotonic() - started)
    finally:
        child.stop(30)


# -- (c) raw ceiling -----------------------------------------------------------------------------
async def run_raw(run: Run, n: int) -> float:
    owner = run.conninfo("owner")
    with psycopg.connect(owner) as conn:
        conn.execute(
            "CREATE UNLOGGED TABLE IF NOT EXISTS bench_raw (topic text, part int, off bigint, value bytea)"
        )
        conn.execute("GRANT INSERT, SELECT ON bench_raw TO " + run.settings.db.ingest_user)
    consumer = AIOKafkaConsumer(
        *run.topics, bootstrap_servers=run.settings.kafka.bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
        enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024**2,
        fetch_max_bytes=64 * 1024**2,
    )  # fmt: skip
    await consumer.start()
    conn = await psycopg.AsyncConnection.connect(run.conninfo())
    seen = 0
    try:
        started = None
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            if not batches:
                continue
            started = started or time.monotonic()
            copy_sql = "COPY bench_raw (topic, part, off, value) FROM STDIN"
            async with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for tp, messages in batches.items():
                    for m in messages:
                        await copy.write_row((tp.topic, tp.partition, m.offset, m.value))
                        seen += 1
            await consumer.commit()
        assert started is not None
        return n / (time.monotonic() - started)
    finally:
        await conn.close()
        await consumer.stop()


# -- (d) Quix Streams ----------------------------------------------------------------------------
def quix_worker_main() -> None:
    """Child process of (d): Quix Streams around the same pure functions and sink."""
    from quixstreams import Application
    from quixstreams.sinks import BatchingSink, SinkBackpressureError, SinkBatch

    from domains import Decoder
    from sinks.errors import Backpressure
    from sinks.writer import EventSink
    from streams.ingest import split_batch
    from streams.kafka_io import Record

    settings = load_settings()
    registry = Registry(settings.domains.namespace, settings.kafka.topic_prefix)
    decoder = Decoder(registry)
    zones = ZoneIndex.from_file()
    loop = asyncio.new_event_loop()
    sink = EventSink.from_settings(settings.db, settings.storage)
    loop.run_until_complete(sink.open())
    horizon = timedelta(seconds=settings.stream.late_horizon_s)

    class IocSink(BatchingSink):
        def __init__(self, domain: str) -> None:
            super().__init__()
            self.domain = domain

        def write(self, batch: SinkBatch) -> None:
            records = [
                Record(batch.topic, batch.partition, item.offset, item.key, item.value,
                       tuple((k, bytes(v)) for k, v in (item.headers or ())), item.timestamp)
                for item in batch
            ]  # fmt: skip
            split = split_batch(
                records, domain=self.domain, decoder=decoder, zones=zones,
                now=datetime.now(UTC), late_horizon=horizon,
            )  # fmt: skip
            try:
                loop.run_until_complete(sink.write(split.batch()))
            except Backpressure as exc:
                raise SinkBackpressureError(retry_after=1.0) from exc

    app = Application(
        broker_address=settings.kafka.bootstrap, consumer_group=settings.stream.app_id,
        auto_offset_reset="earliest", commit_interval=1.0,
        state_dir=tempfile.mkdtemp(prefix="quix-state-"), auto_create_topics=False,
        use_changelog_topics=False,
    )  # fmt: skip
    for domain, topic_name in registry.topics().items():
        topic = app.topic(topic_name, value_deserializer="bytes", key_deserializer="bytes")
        app.dataframe(topic).sink(IocSink(domain))
    app.run()


async def run_quix(run: Run, n: int) -> float:
    group = f"bench-quix-{uuid.uuid4().hex[:6]}"
    child = ChildCommand(
        [__file__, "_quix"], run.logs / "quix.log", run.env(group), program=[sys.executable]
    ).start()
    try:
        deadline = time.monotonic() + 120
        while await asyncio.to_thread(count_events, run) == 0:
            if not child.running() or time.monotonic() > deadline:
                raise child_failed(child, "the quix app stored nothing")
            await asyncio.sleep(0.25)
        started = time.monotonic()  # clock from the first stored batch (after assignment)
        ended = await wait_drained(run, group, None, limit_s=max(180, n / 1000), total=n)
        return n / (ended - started)
    finally:
        child.stop(30)


# -- latency at a fixed rate ---------------------------------------------------------------------
async def run_latency(run: Run, seconds: float, rate: float, figures: Figures) -> None:
    group = f"bench-latency-{uuid.uuid4().hex[:6]}"
    FAUST_GROUPS.append(group)
    port = free_port()
    env = run.env(group, IOC_STREAM__WEB_PORT=str(port), IOC_STREAM__STATS_INTERVAL_S="2")
    worker = ChildCommand(["worker"], run.logs / "worker-latency.log", env).start()
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/metrics", timeout=90, child=worker)
        await asyncio.sleep(3)  # partitions assigned
        n = int(seconds * rate)
        sim = simulation(n, run.prefix, rate=rate, start=datetime.now(UTC))
        await produce(sim.messages(), run.settings.kafka.bootstrap, rate=rate)
        await wait_drained(run, group, worker, limit_s=60, total=n)
        await asyncio.sleep(2.5)  # the last stats window
    finally:
        worker.stop(30)
    with psycopg.connect(run.conninfo()) as conn:
        row = conn.execute(
            "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM ingest_time - time)),"
            " count(*) FROM events"
        ).fetchone()
        stats = conn.execute(
            "SELECT max(latency_p99_s) FROM pipeline_stats WHERE stored > 0"
        ).fetchone()
        incident = conn.execute(
            "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM"
            " ingest_time - time)), (SELECT count(*) FROM incidents) FROM events"
        ).fetchone()
    assert row is not None and stats is not None and incident is not None
    figures.p99_direct_s, figures.latency_events = row[0], row[1]
    figures.p99_stats_s = stats[0]
    figures.incident_p95_s, figures.incidents = incident


# -- main ----------------------------------------------------------------------------------------
async def bench(args: argparse.Namespace) -> Figures:
    settings = load_settings()
    figures = Figures()
    only = set(args.only.split(","))
    logs = Path(tempfile.mkdtemp(prefix="ioc-bench-pipeline-"))
    prefixes: list[str] = []
    n = args.events
    with contextlib.ExitStack() as stack:
        try:
            runs = {
                k: stack.enter_context(scratch_run(settings, logs, k))
                for k in ("a", "r", "b", "c", "d")
                if k in only
            }
            if runs:
                first = next(iter(runs.values()))
                for run in runs.values():
                    run.prefix = first.prefix  # one set of topics, read by every consumer
                prefixes.append(first.prefix)
                await create_topics(
                    settings.kafka.bootstrap, dict.fromkeys(first.topics, PARTITIONS)
                )
                sim = simulation(
                    n,
                    first.prefix,
                    rate=2000.0,
                    start=datetime.now(UTC) - timedelta(seconds=n / 2000),
                )
                t = time.monotonic()
                report = await produce(sim.messages(), settings.kafka.bootstrap)
                print(f"produced {report.sent:,} events in {time.monotonic() - t:.0f}s", flush=True)
            for key, label in (
                ("a", "ours"),
                ("r", "no rules"),
                ("c", "raw"),
                ("d", "quix"),
                ("b", "naive"),
            ):
                if key not in runs:
                    continue
                t = time.monotonic()
                if key in ("a", "r"):
                    figures.rates[key] = await run_ours(
                        runs[key], n, args.profile if key == "a" else None, ours_env(args, key), key
                    )
                elif key == "b":
                    figures.rates[key] = await run_naive(runs[key], args.naive_seconds)
                    figures.notes[key] = f"extrapolated from {args.naive_seconds:.0f}s"
                elif key == "c":
                    figures.rates[key] = await run_raw(runs[key], n)
                else:
                    figures.rates[key] = await run_quix(runs[key], n)
                print(
                    f"  {key} {label:6s} {figures.rates[key]:10,.0f} events/s"
                    f"  ({time.monotonic() - t:.0f}s)",
                    flush=True,
                )
            if args.together:
                await together_rounds(settings, logs, prefixes[0], n, args, figures)
            if args.rounds > 1 and {"a", "r"} <= only:
                await more_rounds(settings, logs, runs["a"].prefix, n, args, figures)
            if "latency" in only:
                with scratch_run(settings, logs, "lat") as run:
                    prefixes.append(run.prefix)
                    await create_topics(
                        settings.kafka.bootstrap, dict.fromkeys(run.topics, PARTITIONS)
                    )
                    await run_latency(run, args.latency_seconds, 2000.0, figures)
        finally:
            if prefixes or FAUST_GROUPS:
                await delete_topics(settings.kafka.bootstrap, prefixes)
    print(f"logs: {logs}")
    return figures


async def run_together(
    settings: Settings, logs: Path, prefix: str, n: int, args: argparse.Namespace, tag: str
) -> tuple[float, float, float]:
    """(a) and (r) at the same time over the same topics, each with its own group and database:
    both share the machine's cores, PostgreSQL and Kafka as its speed drifts, so the ratio of
    the events each committed over the same interval (from when both answer to the last poll
    before either is done) is their ratio of cost per event. Returns (a/s, r/s, seconds)."""
    with contextlib.ExitStack() as stack:
        workers: dict[str, ChildCommand] = {}
        groups: dict[str, str] = {}
        ports: dict[str, int] = {}
        for key in ("a", "r"):
            run = stack.enter_context(scratch_run(settings, logs, f"{key}{tag}"))
            run.prefix = prefix
            workers[key], groups[key], ports[key] = start_ours(
                run, f"{key}{tag}", ours_env(args, key)
            )
            stack.callback(workers[key].stop, 30)
        for key, worker in workers.items():
            wait_http_ok(f"http://127.0.0.1:{ports[key]}/metrics", timeout=90, child=worker)
        admin = AIOKafkaAdminClient(**connect_options(settings.kafka))
        await admin.start()
        topics = set(run.topics)  # both runs read the same topics
        try:
            t0 = time.monotonic()
            first = {k: await committed(admin, g, topics) for k, g in groups.items()}
            last = (t0, first)
            deadline = t0 + max(120, n / 2000)
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                for key, worker in workers.items():
                    if not worker.running():
                        raise child_failed(worker, f"group {groups[key]} not drained")
                now = time.monotonic()
                counts = {k: await committed(admin, g, topics) for k, g in groups.items()}
                if max(counts.values()) >= n:
                    break
                last = (now, counts)
            else:
                raise TimeoutError(f"neither group drained within {deadline - t0:.0f}s")
        finally:
            await admin.close()
        seconds = last[0] - t0
        a, r = ((last[1][k] - first[k]) / seconds for k in ("a", "r"))
        return a, r, seconds


async def together_rounds(
    settings: Settings, logs: Path, prefix: str, n: int, args: argparse.Namespace, figures: Figures
) -> None:
    for i in range(args.together):
        a, r, seconds = await run_together(settings, logs, prefix, n, args, f"t{i}")
        figures.together.append((a, r, seconds))
        print(f"  together {i + 1}: a {a:,.0f}, r {r:,.0f} events/s over {seconds:.0f}s,"
              f" a/r {a / r:.2f}", flush=True)  # fmt: skip


def ours_env(args: argparse.Namespace, key: str) -> dict[str, str]:
    extra = dict(kv.split("=", 1) for kv in args.worker_env)
    if key == "r":
        extra["IOC_RULES__ENABLED"] = "false"
    return extra


async def more_rounds(
    settings: Settings, logs: Path, prefix: str, n: int, args: argparse.Namespace, figures: Figures
) -> None:
    """Rounds 2..K of (a) and (r) over the same topics, each run in a fresh database, the order
    alternating (a r, r a, a r, ...) so that what one run leaves behind (autovacuum, checkpoints,
    the page cache) weighs on both sides alike."""
    figures.rounds.append((figures.rates["a"], figures.rates["r"]))
    figures.worker_us.append((WORKER_US["a"], WORKER_US["r"]))
    for i in range(1, args.rounds):
        rates: dict[str, float] = {}
        for key in ("r", "a") if i % 2 else ("a", "r"):
            with scratch_run(settings, logs, f"{key}{i}") as run:
                run.prefix = prefix
                rates[key] = await run_ours(run, n, None, ours_env(args, key), f"{key}{i}")
            print(f"  {key}{i} {rates[key]:10,.0f} events/s", flush=True)
        figures.rounds.append((rates["a"], rates["r"]))
        figures.worker_us.append((WORKER_US[f"a{i}"], WORKER_US[f"r{i}"]))


def report(figures: Figures, n: int) -> None:
    names = {
        "a": "ours (ioc worker, default rules)",
        "r": "ours, rules off",
        "b": "naive Faust, INSERT per row",
        "c": "raw aiokafka + COPY",
        "d": "Quix Streams + our functions",
    }
    print(f"\n{n:,} events, all domains, 8 topics x {PARTITIONS} partitions, one process each")
    if n < SMALL_RUN:
        print(
            f"  (a smoke run: below {SMALL_RUN:,} events start-up dominates, and (a)'s clock starts"
            " before its worker joined the group while (c)'s and (d)'s start at their first"
            " batch; compare figures of --events 1000000)"
        )
    for key, name in names.items():
        if key in figures.rates:
            note = f"  ({figures.notes[key]})" if key in figures.notes else ""
            print(f"  ({key}) {name:30s} {figures.rates[key]:10,.0f} events/s{note}")
    a = figures.rates.get("a")
    if figures.rounds:
        print("  round   (a) rules on   (r) rules off    a/r   worker CPU us/event: a    r   a-r")
        for i, ((ra, rr), (ua, ur)) in enumerate(
            zip(figures.rounds, figures.worker_us, strict=True)
        ):
            print(
                f"  {i + 1:5d} {ra:14,.0f} {rr:15,.0f} {ra / rr:6.2f} {ua:25.1f} {ur:4.1f} {ua - ur:5.1f}"
            )
        ratios = sorted(ra / rr for ra, rr in figures.rounds)
        pooled = sum(ra for ra, _ in figures.rounds) / sum(rr for _, rr in figures.rounds)
        print(
            f"  a/r median {statistics.median(ratios):.2f}, range {ratios[0]:.2f}-{ratios[-1]:.2f},"
            f" mean rates {pooled:.2f}  (throughput kept with the default rules on)"
        )
        extra = statistics.median(ua - ur for ua, ur in figures.worker_us)
        print(f"  the rules' CPU in the worker: median {extra:.1f} us per event")
    elif a and figures.rates.get("r"):
        print(f"  a/r = {a / figures.rates['r']:.2f}  (throughput kept with the default rules on)")
    if figures.together:
        ratios = sorted(a_ / r_ for a_, r_, _ in figures.together)
        print(
            f"  together ((a) and (r) at once, {len(ratios)} runs): a/r"
            f" {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}"
        )
    for key in ("b", "c", "d"):
        if a and figures.rates.get(key):
            print(f"  a/{key} = {a / figures.rates[key]:.2f}")
    if figures.p99_direct_s is not None:
        print(
            f"  p99 latency at 2,000 events/s ({figures.latency_events:,} events):"
            f" event time -> write {figures.p99_direct_s:.3f}s;"
            f" worst 2 s window p99 (-> commit) {figures.p99_stats_s or 0:.3f}s"
        )
    if figures.incidents:
        print(
            f"  incidents opened in the latency run: {figures.incidents}; an incident row is"
            " written in the transaction of the event that opens it, so arrival -> incident is"
            f" arrival -> event stored: p95 {figures.incident_p95_s:.3f}s"
        )


def main() -> None:
    if sys.argv[1:2] == ["_naive"]:
        sys.argv = [sys.argv[0], "worker", "--loglevel", "warning"]
        naive_worker_main()
        return
    if sys.argv[1:2] == ["_quix"]:
        quix_worker_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--naive-seconds", type=float, default=60.0)
    parser.add_argument("--latency-seconds", type=float, default=40.0)
    parser.add_argument("--only", default="a,r,b,c,d,latency")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument(
        "--together", type=int, default=0,
        help="also run (a) and (r) at the same time, this many times; a/r over the same interval",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="run (a) and (r) this many times each, alternating their order; a/r per round",
    )  # fmt: skip
    parser.add_argument(
        "--worker-env", action="append", default=[], help="KEY=VALUE for (a)'s worker (ablations)"
    )
    args = parser.parse_args()
    missing = missing_for(set(args.only.split(",")), args.profile)
    if missing:
        raise SystemExit(
            f"not installed in {sys.prefix}: {'; '.join(missing)}. `make bench` installs the "
            "`bench` extra into .venv-bench and runs this with it (or: pip install -e '.[bench]')"
        )
    figures = asyncio.run(bench(args))
    report(figures, args.events)


if __name__ == "__main__":
    main()
