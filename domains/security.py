"""Security and safety: camera analytics, emergency calls (113 police, 114 fire, 115 medical)
and fire alarms."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domains.base import Domain, DomainEvent, EventSpec, Measure


class CameraEvent(DomainEvent):
    """A video-analytics detection (FIWARE Alert, category security)."""

    spec = EventSpec(
        "camera_event",
        1,
        fiware="Alert",
        summary="A detection by a camera's analytics: crowd, accident, intrusion, smoke...",
        measures=(Measure("confidence", "ratio"), Measure("people_count", "persons")),
    )

    camera_id: str = Field(min_length=1, max_length=80)
    detection: Literal[
        "crowd", "accident", "intrusion", "wrong_way", "smoke", "fire", "loitering", "flooding"
    ]
    confidence: float = Field(ge=0, le=1)
    people_count: int | None = Field(None, ge=0, le=100_000)


class EmergencyCall(DomainEvent):
    """A call to 113 (police), 114 (fire and rescue) or 115 (ambulance)."""

    spec = EventSpec(
        "emergency_call",
        1,
        fiware="Alert",
        summary="An emergency call (113/114/115) with its category and answer time.",
        measures=(Measure("wait_time", "s"), Measure("call_duration", "s")),
    )

    line: Literal["113", "114", "115"]
    category: Literal["crime", "traffic_accident", "fire", "medical", "flood", "rescue", "other"]
    wait_time: float = Field(ge=0, le=3600, description="Ring to answer, s")
    call_duration: float | None = Field(None, ge=0, le=7200, description="s")


class FireAlarm(DomainEvent):
    """An automatic fire alarm panel (FIWARE Alert, subCategory fire)."""

    spec = EventSpec(
        "fire_alarm",
        1,
        fiware="Alert",
        summary="A fire alarm panel's state with smoke and heat readings.",
        measures=(Measure("smoke_density", "%obs/m"), Measure("temperature", "Cel")),
    )

    building: str = Field(min_length=1, max_length=160)
    state: Literal["normal", "pre_alarm", "alarm", "fault", "test"]
    smoke_density: float | None = Field(None, ge=0, le=100, description="Obscuration, %/m")
    temperature: float | None = Field(None, ge=-20, le=1200, description="Cel")


DOMAIN = Domain("security", "Security and safety", (CameraEvent, EmergencyCall, FireAlarm))
