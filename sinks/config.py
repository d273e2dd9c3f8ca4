"""Database connection settings, owned by the storage layer and composed into `streams.settings`."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Role = Literal["owner", "ingest", "grafana"]
Flavour = Literal["postgres", "timescale"]


class DatabaseSettings(BaseModel):
    """Where the database is and how each role connects.

    Three roles, least privilege: `owner` runs migrations, `ingest` writes what the pipeline
    writes, `grafana` reads what the panels read.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(55432, ge=1, le=65535)
    name: str = Field("ioc", min_length=1)
    flavour: Flavour = "postgres"
    owner_user: str = "ioc_owner"
    owner_password: SecretStr = SecretStr("ioc-owner-dev")
    ingest_user: str = "ioc_ingest"
    ingest_password: SecretStr = SecretStr("ioc-ingest-dev")
    grafana_user: str = "ioc_grafana"
    grafana_password: SecretStr = SecretStr("ioc-grafana-dev")
    connect_timeout_s: float = Field(5.0, gt=0)
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(4, ge=1)

    def credentials(self, role: Role) -> tuple[str, SecretStr]:
        return {
            "owner": (self.owner_user, self.owner_password),
            "ingest": (self.ingest_user, self.ingest_password),
            "grafana": (self.grafana_user, self.grafana_password),
        }[role]

    def conninfo(self, role: Role = "owner", *, dbname: str | None = None) -> str:
        """A libpq connection string for `role`, with the password in it (never log it)."""
        from psycopg.conninfo import make_conninfo

        user, password = self.credentials(role)
        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=dbname or self.name,
            user=user,
            password=password.get_secret_value(),
            connect_timeout=max(1, round(self.connect_timeout_s)),
            application_name=f"ioc-{role}",
        )


WriteMethod = Literal["auto", "copy", "unnest"]


class StorageSettings(BaseModel):
    """How data is laid out, kept and written (`IOC_STORAGE__*`).

    Intervals are ISO 8601 durations or seconds in the environment (`P1D`, `PT1H`, `86400`).
    The layout settings (chunk interval, retention, compression, refresh window) are read by
    `ioc db migrate` when it creates the tables and policies, and by the maintenance task.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    chunk_interval: timedelta = Field(
        timedelta(days=1),
        description="Hypertable chunk / partition width for events and measurements.",
    )
    raw_retention: timedelta = Field(
        timedelta(days=90), description="Raw events and measurements older than this are dropped."
    )
    aggregate_retention: timedelta = Field(
        timedelta(days=5 * 365),
        description="measurements_1m / _1h rows older than this are dropped.",
    )
    compress_after: timedelta = Field(
        timedelta(days=7), description="Flavour timescale: chunks older than this are compressed."
    )
    refresh_window: timedelta = Field(
        timedelta(hours=3),
        description="Flavour timescale: how far back the aggregate refresh policies look; "
        "must exceed the late-event horizon.",
    )
    premake_partitions: int = Field(
        3, ge=1, le=100, description="Flavour postgres: partitions created ahead of now."
    )
    past_partitions: int = Field(
        2,
        ge=0,
        le=1000,
        description="Flavour postgres: partitions kept ready behind now (late data).",
    )
    write_method: WriteMethod = Field(
        "auto",
        description="copy: binary COPY into a staging table; unnest: INSERT .. SELECT FROM "
        "unnest(arrays). auto = copy on postgres, unnest on timescale (the WASM build's "
        "COPY FROM STDIN is broken).",
    )
