"""Who is on call: rotations of shifts in the center's time zone (paging.model.OnCall)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from paging.model import OnCall, Rotation


@dataclass(frozen=True)
class Shift:
    role: str
    person: str
    starts: datetime
    ends: datetime


def shift_at(role: str, rotation: Rotation, timezone: str, at: datetime) -> Shift:
    """The shift of `role` that covers `at` (aware): people take turns from `start` at `handover`."""
    zone = ZoneInfo(timezone)
    origin = datetime.combine(rotation.start, rotation.handover, tzinfo=zone)
    number = (at - origin) // rotation.shift  # floor division: before `start` counts backwards
    starts = origin + number * rotation.shift
    person = rotation.people[number % len(rotation.people)]
    return Shift(role, person, starts, starts + rotation.shift)


def on_call(oncall: OnCall, at: datetime) -> list[Shift]:
    """Every role's shift at `at`, in the file's order."""
    return [shift_at(role, rot, oncall.timezone, at) for role, rot in oncall.roles.items()]


def upcoming(oncall: OnCall, role: str, at: datetime, count: int) -> list[Shift]:
    """The role's shift at `at` and the `count - 1` after it."""
    rotation = oncall.roles[role]
    first = shift_at(role, rotation, oncall.timezone, at)
    return [
        shift_at(role, rotation, oncall.timezone, first.starts + i * rotation.shift)
        for i in range(count)
    ]
