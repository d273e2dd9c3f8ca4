"""Settings of the incident API and its links, composed into `streams.settings.Settings` as `api`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ApiSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Where `ioc api` listens.")
    port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = Field(
        None, description="The API's address as officers' phones reach it (https://...); the "
        "one-tap links in pages start with it. Unset: pages carry no link.",
    )  # fmt: skip
    token_key: SecretStr | None = Field(
        None, description="The key API tokens are hashed with (HMAC-SHA256) before they are "
        "stored; needed by `ioc tokens create` and `ioc api`.",
    )  # fmt: skip
    link_key: SecretStr | None = Field(
        None, description="The key one-tap links are signed with (HMAC-SHA256)."
    )
    link_ttl_s: int = Field(1800, ge=60, le=7 * 86400, description="How long a link works.")
    max_body_bytes: int = Field(16_384, ge=256, le=10 * 1024**2, description="Larger -> 413.")
    rate_per_minute: int = Field(
        120, ge=1, le=100_000, description="Requests per token per minute."
    )
    timezone: str = Field(
        "Asia/Ho_Chi_Minh", description="The time zone the link's page shows times in."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; none by default (closed)."
    )

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value
