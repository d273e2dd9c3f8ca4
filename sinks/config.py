"""Database connection settings, owned by the storage layer and composed into `streams.settings`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Role = Literal["owner", "ingest", "grafana", "notifier", "api"]
ROLES: tuple[Role, ...] = ("owner", "ingest", "grafana", "notifier", "api")
Flavour = Literal["postgres", "timescale"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class DatabaseSettings(BaseModel):
    """Where the database is and how each role connects.

    One role per job, least privilege (the grants are in sinks/migrations/): `owner` owns the
    schema and runs migrations and maintenance; `ingest` writes what the pipeline writes; `grafana`
    reads what the panels read; `notifier` pages from the outbox; `api` serves people's actions
    on incidents (the API, its tokens and links, `ioc incidents`).
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
    notifier_user: str = "ioc_notifier"
    notifier_password: SecretStr = SecretStr("ioc-notifier-dev")
    api_user: str = "ioc_api"
    api_password: SecretStr = SecretStr("ioc-api-dev")
    sslmode: SslMode = Field(
        "prefer",
        description="libpq sslmode: verify-full checks the server's certificate against "
        "sslrootcert and its name against host; prefer (libpq's default) tries TLS, unverified.",
    )
    sslrootcert: Path | None = Field(
        None, description="The CA certificate (PEM) that verify-ca / verify-full trust."
    )
    connect_timeout_s: float = Field(5.0, gt=0)
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(4, ge=1)

    def credentials(self, role: Role) -> tuple[str, SecretStr]:
        return {
            "owner": (self.owner_user, self.owner_password),
            "ingest": (self.ingest_user, self.ingest_password),
            "grafana": (self.grafana_user, self.grafana_password),
            "notifier": (self.notifier_user, self.notifier_password),
            "api": (self.api_user, self.api_password),
        }[role]

    def user(self, role: Role) -> str:
        return self.credentials(role)[0]

    def users(self) -> list[str]:
        """Every role's name, the owner first."""
        return [self.user(role) for role in ROLES]

    def conninfo(self, role: Role = "owner", *, dbname: str | None = None) -> str:
        """A libpq connection string for `role`, with the password in it (never log it)."""
        from psycopg.conninfo import make_conninfo

        user, password = self.credentials(role)
        tls = {"sslrootcert": str(self.sslrootcert)} if self.sslrootcert else {}
        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=dbname or self.name,
            user=user,
            password=password.get_secret_value(),
            connect_timeout=max(1, round(self.connect_timeout_s)),
            application_name=f"ioc-{role}",
            sslmode=self.sslmode,
            **tls,
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
