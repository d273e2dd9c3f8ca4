"""`ioc schemas export DIR`: the event contracts as files, for integrators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from domains.registry import Registry
from domains.schemas import export
from geo import ZoneFileError, ZoneIndex
from ioc.console import console, fail, settings_from
from streams.relay import INCIDENT_SCHEMA

schemas_app = typer.Typer(help="Event contracts: JSON Schemas and AsyncAPI.", no_args_is_help=True)


@schemas_app.command("export")
def export_command(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write (created if missing).")],
) -> None:
    """Write a JSON Schema per event type, the envelope's schema, the incident's schema (the
    data of the incidents topic's CloudEvents) and an AsyncAPI 3.0 document.

    `zone_id` is an enum of the zone file's ids (settings.geo.zone_file, IOC_GEO__ZONE_FILE)."""
    settings = settings_from(ctx)
    registry = Registry(settings.domains.namespace, settings.kafka.topic_prefix)
    try:
        zones = ZoneIndex.from_file(settings.geo.zone_file)
    except (OSError, ZoneFileError) as exc:
        raise fail(f"cannot read the zone file: {exc}") from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        documents = export(registry, zones.ids) | {"incident.schema.json": INCIDENT_SCHEMA}
        for name, document in documents.items():
            path = directory / name
            if name.endswith(".yaml"):
                path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
            else:
                path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise fail(f"cannot write to {directory}: {exc.strerror or exc}") from None
    console.print(
        f"wrote {len(registry)} event schemas, cloudevent.schema.json, incident.schema.json "
        "(the data of the incidents topic's events) and asyncapi.yaml "
        f"({len(zones)} zone ids) to {directory}",
        highlight=False,
    )
