"""One frozen Settings object, read from the environment (`IOC_` prefix, nested with `__`).

Loaded when a command starts (`load_settings`), never at import time. Secrets are `SecretStr`
so they are masked wherever settings are printed or logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from access.config import ApiSettings
from domains.config import DomainsSettings
from geo.config import GeoSettings
from paging.config import PagingSettings
from rules.config import RulesSettings
from sinks.config import DatabaseSettings, StorageSettings


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap: str = Field(
        "127.0.0.1:19092", description="Comma-separated host:port list of Kafka brokers."
    )
    topic_prefix: str = Field(
        "city", min_length=1, description="Topics are <prefix>.<domain>.events."
    )
    partitions: int = Field(6, ge=1, le=1000, description="Partitions per domain topic.")
    replication_factor: int = Field(1, ge=1, le=10)
    client_id: str = "ioc"
    security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="PLAINTEXT (the local default) or SASL_SSL: SCRAM over TLS, one principal "
        "per process (README, Security).",
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    username: str | None = Field(
        None, description="This process's SCRAM principal (SASL_SSL only)."
    )
    password: SecretStr | None = Field(None, description="Its SCRAM password (SASL_SSL only).")
    ssl_cafile: Path | None = Field(
        None, description="PEM bundle of the CA that signed the brokers' certificates; unset = "
        "the system's trust store.",
    )  # fmt: skip
    ssl_check_hostname: bool = Field(
        True, description="Check the broker certificate's name against the bootstrap host."
    )

    @field_validator("bootstrap")
    @classmethod
    def _hosts_have_ports(cls, value: str) -> str:
        for part in value.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port...], got {part.strip()!r}")
        return value

    @model_validator(mode="after")
    def _secure_needs_a_principal(self) -> KafkaSettings:
        if self.security_protocol == "SASL_SSL" and not (self.username and self.password):
            raise ValueError(
                "security_protocol SASL_SSL needs IOC_KAFKA__USERNAME and IOC_KAFKA__PASSWORD"
            )
        return self

    @property
    def secure(self) -> bool:
        return self.security_protocol == "SASL_SSL"

    @property
    def first_port(self) -> int:
        return int(self.bootstrap.split(",")[0].rpartition(":")[2])

    @property
    def first_host(self) -> str:
        return self.bootstrap.split(",")[0].rpartition(":")[0].strip()


class DevSettings(BaseModel):
    """The local runtime that `ioc dev up` starts (Kafka from Maven Central jars, Debian's PG)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_dir: Path = Field(Path(".local"), description="All local state lives here.")
    kafka_version: str = Field("3.9.1", pattern=r"^3\.9\.\d+$")
    kafka_controller_port: int = Field(19093, ge=1, le=65535)
    kafka_heap: str = Field("768m", pattern=r"^\d+[mg]$")
    kafka_secure: bool = Field(
        False, description="`ioc dev up` runs Kafka with SASL/SCRAM over TLS (`--secure`)."
    )
    pg_bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    pg_os_user: str = "postgres"
    start_timeout_s: float = Field(90.0, gt=0)


class GrafanaSettings(BaseModel):
    """Where `ioc dashboards push` uploads the dashboards (its --url and --token override)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field("http://127.0.0.1:3000", description="Grafana's base URL.")
    token: SecretStr | None = Field(
        None, description="A service-account token; preferred over user and password."
    )
    user: str = Field("admin", description="Basic-auth user when no token is set.")
    password: SecretStr = Field(
        SecretStr("admin"), description="Basic-auth password when no token is set."
    )


class StreamSettings(BaseModel):
    """The Faust worker's knobs (streams/faust_ext.py `create_app`); defaults measured in
    bench/faust_consumer.py on this machine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: str = Field(
        "ioc-pipeline", min_length=1, description="Faust app id = Kafka consumer group."
    )
    batch_size: int = Field(5000, ge=1, description="stream.take(n): events per ingest batch.")
    batch_window_s: float = Field(
        0.5, gt=0, le=60, description="stream.take(within=...): flush a partial batch after this."
    )
    broker_max_poll_records: int = Field(
        10_000, ge=1, description="Records handed over per getmany (aiokafka max_poll_records)."
    )
    consumer_max_fetch_size: int = Field(
        4 * 1024**2,
        ge=1024,
        description="Bytes per partition per fetch (max_partition_fetch_bytes).",
    )
    fetch_max_wait_ms: int = Field(
        100, ge=0, le=30_000, description="Broker long-poll wait; Faust hard-codes 1500."
    )
    stream_buffer_maxsize: int = Field(
        32_768,
        ge=1,
        description="With read_chunks off: events buffered per stream before its partitions "
        "are paused.",
    )
    read_chunks: bool = Field(
        True,
        description="Hand each ingest agent one Faust message per partition per fetch (a chunk "
        "of records, streams/faust_ext.py RecordChunk) instead of one per record; false = Faust's "
        "per-record path, kept for comparison.",
    )
    chunk_buffer_maxsize: int = Field(
        16, ge=1, le=4096, description="With read_chunks: chunks buffered per ingest stream "
        "before its partitions are paused (a chunk holds up to one fetch of a partition).",
    )  # fmt: skip
    commit_interval_s: float = Field(1.0, gt=0, description="Commit acked offsets this often.")
    session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=300,
        description="A worker that stops heartbeating (killed, frozen) loses its partitions to "
        "the others after this long (Kafka's session.timeout.ms).",
    )
    stream_yield_every: int = Field(
        100, ge=1, le=10_000, description="Events a stream takes before yielding (Faust: 1)."
    )
    cython_optimizations: bool = Field(
        False, description="Faust's opt-in Cython fast paths; no gain measured with IngestStream."
    )
    web_enabled: bool = True
    web_port: int = Field(6066, ge=1, le=65535, description="Faust web (/metrics) port.")
    web_host: str = "127.0.0.1"
    stop_wait_s: float = Field(
        10.0, ge=0, le=600, description="On SIGTERM, how long batches in flight may take to "
        "finish (a database outage holds them); what is not done by then is not committed and "
        "is read again by the next worker.",
    )  # fmt: skip
    retry_first_s: float = Field(
        0.2, gt=0, le=60, description="First wait when the database or the DLQ is unavailable "
        "(the one retry loop, streams.retry); doubles up to retry_cap_s.",
    )  # fmt: skip
    retry_cap_s: float = Field(5.0, gt=0, le=600, description="Longest wait between retries.")
    late_horizon_s: float = Field(
        3600.0, ge=0, description="Events older than now minus this go to the DLQ as too_late."
    )
    stats_interval_s: float = Field(
        5.0, gt=0, le=3600, description="How often pipeline health is written to pipeline_stats."
    )
    maintenance_interval_s: float = Field(
        10.0, gt=0, le=86400, description="How often aggregates are refreshed for changed ranges."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IOC_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        env_file=None,
    )

    env: str = Field("dev", description="Deployment name shown in logs and dashboards.")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field("console", pattern=r"^(console|json)$")
    kafka: KafkaSettings = KafkaSettings()
    db: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    dev: DevSettings = DevSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    domains: DomainsSettings = DomainsSettings()
    stream: StreamSettings = StreamSettings()
    geo: GeoSettings = GeoSettings()
    rules: RulesSettings = RulesSettings()
    paging: PagingSettings = PagingSettings()
    api: ApiSettings = ApiSettings()


class SettingsError(Exception):
    """Invalid settings: carries one line per bad field, naming its environment variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def env_name(loc: tuple[Any, ...]) -> str:
    """The environment variable that sets the field at `loc` (e.g. IOC_KAFKA__BOOTSTRAP)."""
    return "IOC_" + "__".join(str(part).upper() for part in loc if not isinstance(part, int))


def load_settings(**overrides: Any) -> Settings:
    """Read the environment now; raise SettingsError naming each bad field."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [
            f"{env_name(err['loc'])}: {err['msg']} (got {err.get('input')!r})"
            if err["type"] != "extra_forbidden"
            else f"{env_name(err['loc'])}: unknown setting"
            for err in exc.errors()
        ]
        raise SettingsError(problems) from None


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, secrets shown as '**********'."""
    return settings.model_dump(mode="json")
