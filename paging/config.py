"""Settings of the notifier, composed into `streams.settings.Settings` as `paging`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class PagingSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    file: Path | None = Field(
        None, description="The city's paging file (routes, receivers, on-call, escalation); "
        "default: the example shipped in paging/defaults/paging.yaml.",
    )  # fmt: skip
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="The value of each secret the paging file names, an apprise URL (e.g. "
        "IOC_PAGING__SECRETS__CENTER_MAIL=mailtos://user:pass@mail.example.org?to=...).",
    )
    poll_interval_s: float = Field(
        0.2, gt=0, le=60, description="How often the notifier looks for new transitions, due "
        "groups, escalation steps and notifications to send.",
    )  # fmt: skip
    claim_limit: int = Field(500, ge=1, le=10_000, description="Rows claimed per transaction.")
    send_timeout_s: float = Field(10.0, gt=0, le=300, description="One delivery attempt's limit.")
    retry_first_s: float = Field(2.0, gt=0, le=600, description="First wait after a failed send.")
    retry_cap_s: float = Field(300.0, gt=0, le=86_400, description="Longest wait between sends.")
    mail_from: str = Field(
        "ioc@localhost", description="The sender of e-mail pages when the URL gives no `from`."
    )
    dashboard_url: str = Field(
        "http://127.0.0.1:3000/d/ioc-zone/zone?var-zone={zone}",
        description="The zone's Grafana dashboard, linked from every page; {zone} is the zone id.",
    )

    @field_validator("secrets")
    @classmethod
    def _lower_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return {name.lower(): secret for name, secret in value.items()}
