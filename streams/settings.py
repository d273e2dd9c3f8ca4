"""One frozen Settings object, read from the environment (`IOC_` prefix, nested with `__`).

Loaded when a command starts (`load_settings`), never at import time. Secrets are `SecretStr`
so they are masked wherever settings are printed or logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domains.config import DomainsSettings
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

    @field_validator("bootstrap")
    @classmethod
    def _hosts_have_ports(cls, value: str) -> str:
        for part in value.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port...], got {part.strip()!r}")
        return value

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
    pg_bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    pg_os_user: str = "postgres"
    start_timeout_s: float = Field(90.0, gt=0)


class GrafanaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = "http://127.0.0.1:3000"
    token: SecretStr | None = None
    user: str = "admin"
    password: SecretStr = SecretStr("admin")


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
