"""`ioc simulate`: publish the eight domains' events to Kafka, with scenarios and faults."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domains.registry import Registry
from geo.zones import ZoneFileError, ZoneIndex
from ioc.console import check_kafka, console, fail, settings_from
from simulator.config import (
    FAULTS,
    SCENARIOS,
    SimulatorConfig,
    parse_duration,
    parse_faults,
)
from simulator.generate import Simulation
from simulator.produce import ProduceReport, produce
from streams.kafka_io import create_topics
from streams.settings import KafkaSettings


def simulate_command(
    ctx: typer.Context,
    rate: Annotated[
        float, typer.Option(help="Events per second (the pace, and the spacing of event times).")
    ] = 2000.0,
    duration: Annotated[
        str | None,
        typer.Option(help="How long to run, e.g. 30s, 10m, 1h (default 1m unless --count)."),
    ] = None,
    count: Annotated[
        int | None, typer.Option(help="Send exactly this many messages instead of --duration.")
    ] = None,
    domains: Annotated[
        str | None, typer.Option(help="Comma-separated domains (default: all eight).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed and start time -> the same messages.")] = 0,
    scenario: Annotated[str | None, typer.Option(help=f"One of: {', '.join(SCENARIOS)}.")] = None,
    scenario_zone: Annotated[
        str | None, typer.Option(help="Zone id where the scenario happens.")
    ] = None,
    faults: Annotated[float, typer.Option(help="Rate of EACH fault kind (e.g. 0.002).")] = 0.0,
    fault: Annotated[
        list[str] | None, typer.Option(help=f"KIND=RATE, repeatable; kinds: {', '.join(FAULTS)}.")
    ] = None,
    structured: Annotated[float, typer.Option(help="Share of messages in structured mode.")] = 0.1,
    fast: Annotated[
        bool, typer.Option(help="Send as fast as possible; event times are a backfill ending now.")
    ] = False,
    start: Annotated[
        datetime | None,
        typer.Option(
            help="Event time of the first event (ISO 8601 with offset; default now).",
            formats=["%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
    utc_offset: Annotated[
        float, typer.Option(help="Local time zone of the daily patterns, hours from UTC.")
    ] = 7.0,
    zones: Annotated[
        Path | None,
        typer.Option(
            help="Zone GeoJSON (default: IOC_GEO__ZONE_FILE, else the Dak Lak reference zones)."
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(help="Write the manifest (what was sent, expected outcomes) here."),
    ] = None,
) -> None:
    """Publish realistic events of the eight domains to Kafka (key = entity id).

    Day/night cycles, rush hours, the rainy season, the coffee festival; optional scenarios
    (flood, festival-crowd, air-pollution, sensor-silence, hospital-surge) and injected faults
    (malformed JSON, wrong types, unknown types, duplicates, late events, bad coordinates,
    oversized payloads), all recorded in the manifest.
    """
    settings = settings_from(ctx)
    check_kafka(settings)
    try:
        total = count if count is not None else round(parse_duration(duration or "1m") * rate)
        if count is not None and duration is not None:
            raise ValueError("give --duration or --count, not both")
        now = datetime.now(UTC)
        first = start or (now - timedelta(seconds=total / rate) if fast else now)
        config = SimulatorConfig(
            count=total,
            rate=rate,
            seed=seed,
            start=first,
            domains=tuple(d.strip() for d in domains.split(",") if d.strip()) if domains else (),
            scenario=scenario,  # type: ignore[arg-type]
            scenario_zone=scenario_zone,
            faults=parse_faults(faults, fault or []),
            structured_share=structured,
            utc_offset_h=utc_offset,
            namespace=settings.domains.namespace,
            topic_prefix=settings.kafka.topic_prefix,
            max_event_bytes=settings.domains.max_event_bytes,
        )
        registry = Registry(settings.domains.namespace, settings.kafka.topic_prefix)
        simulation = Simulation(
            config, registry, ZoneIndex.from_file(zones or settings.geo.zone_file)
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise fail(f"--{'-'.join(str(p) for p in err['loc'])}: {err['msg']}", 2) from None
    except (ValueError, ZoneFileError) as exc:
        raise fail(str(exc), 2) from None

    report = asyncio.run(run(simulation, settings.kafka, settings.kafka.partitions, settings.kafka.replication_factor, None if fast else rate))  # fmt: skip
    if manifest:
        manifest.write_bytes(simulation.manifest.to_json())
    table = Table(
        title=f"sent {report.sent:,} messages in {report.seconds:.1f}s: {report.rate:,.0f}/s"
    )
    for column in ("domain", "topic", "sent", "stored", "duplicate", "dlq"):
        table.add_column(column, justify="right" if column not in ("domain", "topic") else "left")
    for domain, counts in simulation.manifest.expected().items():
        dlq = sum(v for k, v in counts.items() if k.startswith("dlq:"))
        table.add_row(
            domain, registry.topic(domain), f"{simulation.manifest.sent[domain]:,}",
            f"{counts.get('stored', 0):,}", f"{counts.get('duplicate', 0):,}", f"{dlq:,}",
        )  # fmt: skip
    console.print(table)
    if manifest:
        console.print(f"manifest: {manifest}", highlight=False)


async def run(
    simulation: Simulation,
    bootstrap: KafkaSettings,
    partitions: int,
    replication: int,
    rate: float | None,
) -> ProduceReport:

    topics = {simulation.registry.topic(t.domain): partitions for t in simulation.types}
    try:
        await create_topics(bootstrap, topics, replication)
    except Exception as exc:  # any failure here means the broker is not reachable
        raise fail(
            f"cannot reach Kafka at {bootstrap.bootstrap} ({exc.__class__.__name__}: {exc}); "
            "start it with `ioc dev up`"
        ) from exc
    columns = (
        TextColumn("[bold]simulate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("simulate", total=simulation.config.count, rate="")
        started = time.monotonic()

        def update(sent: int) -> None:
            elapsed = time.monotonic() - started
            live = f"{sent / elapsed:,.0f} ev/s" if elapsed > 0 else ""
            progress.update(task, completed=sent, rate=live)

        return await produce(simulation.messages(), bootstrap, rate=rate, progress=update)
