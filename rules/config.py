"""Settings of the rule engine, composed into `streams.settings.Settings` as `rules`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class RulesSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="Run the rules in the ingest agents.")
    defaults: bool = Field(True, description="Load the rules shipped in rules/defaults/.")
    dir: Path | None = Field(
        None, description="The city's own rule files (*.yaml); a rule here replaces a shipped "
        "rule of the same id.",
    )  # fmt: skip
    relay_interval_s: float = Field(
        1.0, gt=0, le=600, description="How often new incident transitions are published."
    )
    silence_interval_s: float = Field(
        10.0, gt=0, le=3600, description="How often the silence rules are checked."
    )
