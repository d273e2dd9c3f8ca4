"""SQL that several panels share, written as Grafana users write it: macros ($__timeFilter,
$__timeGroupAlias, $__timeFrom(), $__timeTo(), $__interval_ms) and the `zone` variable.

Every name put into these strings is a constant of this package or of domains/ (a domain, a
metric, an entity prefix); nothing comes from data. Grafana sends the text to the database as it
is, after expanding the macros and variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The 1-minute aggregate serves ranges up to this long, the 1-hour aggregate longer ones; the raw
# tables serve only the panels that look at the last minutes or hour.
AGGREGATE_SWITCH = "6 hours"
RANGE = "$__timeTo()::timestamptz - $__timeFrom()::timestamptz"

# The zone variable (multi-value, with All): Grafana writes the chosen ids as 'a','b' (All: every
# id). Rows without a zone never match a zone filter.
ZONE_FILTER = "zone_id IN (${zone:sqlstring})"

# Incidents carry their rule id, not a domain. A default rule's id starts with its domain or the
# domain's short name (tests/unit/test_dashboards_build.py keeps every default rule so);
# correlation rules start with "compound".
RULE_PREFIX_DOMAIN = {"agri": "agriculture", "env": "environment"}
INCIDENT_DOMAIN = (
    "CASE split_part(rule_id, '.', 1) "
    + " ".join(f"WHEN '{p}' THEN '{d}'" for p, d in sorted(RULE_PREFIX_DOMAIN.items()))
    + " ELSE split_part(rule_id, '.', 1) END"
)
OPEN = "state <> 'resolved'"  # open or acknowledged

SEVERITIES = ("critical", "high", "medium", "low", "informational")
SEVERITY_COLOURS = {
    "critical": "dark-red",
    "high": "red",
    "medium": "orange",
    "low": "yellow",
    "informational": "blue",
}


def rule_domain(rule_id: str) -> str:
    """What INCIDENT_DOMAIN computes in SQL, for tests and the snapshot."""
    prefix = rule_id.split(".", 1)[0]
    return RULE_PREFIX_DOMAIN.get(prefix, prefix)


Combine = Literal["avg", "max", "min", "sum", "count"]

# How one bucket of the aggregates (count, min, max, avg per domain, metric, zone) combines into
# a coarser one: averages weighted by their counts, sums from avg * count.
COMBINE: dict[Combine, str] = {
    "avg": "sum(m.avg * m.count) / sum(m.count)",
    "max": "max(m.max)",
    "min": "min(m.min)",
    "sum": "sum(m.avg * m.count)",
    "count": "sum(m.count)",
}


@dataclass(frozen=True)
class Series:
    """A metric of one domain over the dashboard's range, one series per zone."""

    domain: str
    metric: str
    combine: Combine = "avg"


def zone_series(s: Series) -> str:
    """Time series per zone from the aggregates: measurements_1m up to AGGREGATE_SWITCH,
    measurements_1h beyond it. Both branches are in the query; the one whose range condition is
    false is cut at plan time and reads nothing."""
    branches = []
    for table, cond in (("measurements_1m", "<="), ("measurements_1h", ">")):
        branches.append(
            f"SELECT $__timeGroupAlias(m.bucket, $__interval), z.name AS metric, "
            f"{COMBINE[s.combine]} AS value\n"
            f"FROM {table} m JOIN zones z ON z.id = m.zone_id\n"
            f"WHERE $__timeFilter(m.bucket) AND {RANGE} {cond} interval '{AGGREGATE_SWITCH}'\n"
            f"  AND m.domain = '{s.domain}' AND m.metric = '{s.metric}' AND m.{ZONE_FILTER}\n"
            f"GROUP BY 1, 2"
        )
    return "\nUNION ALL\n".join(branches) + "\nORDER BY 1, 2"


def latest_by_entity(
    domain: str, metric: str, prefix: str, *, order: str = "DESC", limit: int = 20
) -> str:
    """The current value per entity (measurements_latest), the most extreme first."""
    return (
        f"SELECT l.entity_id AS entity, z.name AS zone, l.value\n"
        f"FROM measurements_latest l LEFT JOIN zones z ON z.id = l.zone_id\n"
        f"WHERE l.domain = '{domain}' AND l.metric = '{metric}' AND l.entity_id LIKE '{prefix}-%'\n"
        f"  AND l.{ZONE_FILTER}\n"
        f"ORDER BY l.value {order}\nLIMIT {limit}"
    )


def recent_points(domain: str, metric: str, prefix: str) -> str:
    """Raw measurements, one point per reading: only for panels limited to a short range."""
    return (
        f'SELECT time, value AS "{metric}"\nFROM measurements\n'
        f"WHERE $__timeFilter(time) AND domain = '{domain}' AND metric = '{metric}'\n"
        f"  AND entity_id LIKE '{prefix}-%' AND {ZONE_FILTER}\nORDER BY time"
    )


def events_per_minute(domain: str) -> str:
    """Events stored in the last five minutes of the range, per minute (raw events, short)."""
    return (
        f"SELECT count(*) / 5.0 FROM events WHERE domain = '{domain}'\n"
        f"  AND time > $__timeTo()::timestamptz - interval '5 minutes' AND time <= $__timeTo()"
    )


def freshness_s(domain: str) -> str:
    """Seconds since the newest measurement of the domain (measurements_latest)."""
    return f"SELECT extract(epoch FROM min(age)) FROM measurements_latest WHERE domain = '{domain}'"


def open_incidents(domain: str) -> str:
    return f"SELECT count(*) FROM incidents WHERE {OPEN} AND {INCIDENT_DOMAIN} = '{domain}'"


def health_tile(domain: str) -> str:
    """One row: events/min, freshness (s), open incidents of a domain."""
    return (
        f'SELECT ({events_per_minute(domain)}) AS "events/min",\n'
        f'  ({freshness_s(domain)}) AS "freshness",\n'
        f'  ({open_incidents(domain)}) AS "open incidents"'
    )
