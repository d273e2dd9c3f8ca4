"""CPU use of a process from /proc/<pid>/stat, for the benchmarks' CPU figures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuUse:
    """A process's name and CPU seconds (user + system) so far, from /proc/<pid>/stat."""

    name: str
    own_s: float
    reaped_children_s: float


def cpu_use(pid: int | str) -> CpuUse | None:
    """CPU use of process `pid` (benchmarks read it); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is the state (field 3)
    return CpuUse(
        name,
        (int(fields[11]) + int(fields[12])) / tick,  # utime, stime
        (int(fields[13]) + int(fields[14])) / tick,  # cutime, cstime
    )
