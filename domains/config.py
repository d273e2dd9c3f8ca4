"""Settings of the event contracts, composed into `streams.settings.Settings` as `domains`.

`namespace` is the one place where the deployment (here: Dak Lak, Vietnam) shows in type strings:
`<namespace>.<domain>.<event>.v<version>`. Another city sets `IOC_DOMAINS__NAMESPACE`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DomainsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(
        "vn.daklak",
        pattern=r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$",
        description="Prefix of every event type string (country.province).",
    )
    max_event_bytes: int = Field(
        65_536, ge=1024, le=1_000_000, description="Larger messages are rejected as too_large."
    )
    max_future_s: float = Field(
        300.0, ge=0, description="Event times further ahead of now are rejected as future_time."
    )
