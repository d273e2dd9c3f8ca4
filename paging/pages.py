"""What a page says and when it may leave: pure functions over incidents as the outbox carries them.

An incident here is the outbox payload (sinks.incidents.outbox_payload): a dict with id, rule_id,
zone_id, severity, title, description {vi, en}, count, flapping, flap_count, ... Labels are what
routes, groups and silences match: zone, domain, severity and rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from paging.model import Grouping, QuietHours, Route
from rules.load import RuleSet
from rules.model import Correlation

SEVERITY_ORDER = ["informational", "low", "medium", "high", "critical"]
SEVERITY_VI = {"informational": "thông tin", "low": "thấp", "medium": "trung bình",
               "high": "cao", "critical": "khẩn cấp"}  # fmt: skip


def labels_of(incident: Mapping[str, Any]) -> dict[str, str | None]:
    return {
        "zone": incident.get("zone_id"),
        "domain": incident.get("domain") or "unknown",
        "severity": incident.get("severity"),
        "rule": incident.get("rule_id"),
    }


def group_key(route: Route, grouping: Grouping, labels: Mapping[str, str | None]) -> str:
    """The group an incident joins: the route and its group_by labels' values."""
    parts = [f"{label}={labels.get(label) or '-'}" for label in grouping.group_by]
    return "|".join([f"route={route.name}", *parts])


def group_wait(grouping: Grouping, severity: str | None) -> timedelta:
    return grouping.critical_group_wait if severity == "critical" else grouping.group_wait


def quiet_until(quiet: QuietHours | None, timezone: str, severity: str,
                now: datetime) -> datetime | None:  # fmt: skip
    """When a page of `severity` created at `now` may leave, if quiet hours hold it; else None."""
    if quiet is None or severity not in quiet.severities:
        return None
    local = now.astimezone(ZoneInfo(timezone))
    start = local.replace(hour=quiet.start.hour, minute=quiet.start.minute, second=0, microsecond=0)
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if quiet.start < quiet.end:  # e.g. 12:00-14:00, within one day
        return end if start <= local < end else None
    # across midnight, e.g. 22:00-06:00
    if local >= start:
        return end + timedelta(days=1)
    if local < end:
        return end
    return None


def highest(severities: Iterable[str]) -> str:
    found = [s for s in severities if s in SEVERITY_ORDER]
    return max(found, key=SEVERITY_ORDER.index) if found else "informational"


def constituents(ruleset: RuleSet) -> dict[str, set[str]]:
    """For each correlation rule, the rules whose incidents it groups: a rule of one of its
    conditions' domain and event type that looks at the condition's metric."""
    found: dict[str, set[str]] = {}
    for compound in ruleset:
        if not isinstance(compound, Correlation):
            continue
        covered: set[str] = set()
        for cond in compound.conditions:
            for rule in ruleset.by_domain.get(cond.domain, ()):
                if isinstance(rule, Correlation) or rule.domain != cond.domain:
                    continue
                if cond.event_type is not None and rule.event_type not in (None, cond.event_type):
                    continue
                if cond.metric is not None and getattr(rule, "metric", None) != cond.metric:
                    continue
                covered.add(rule.id)
        found[compound.id] = covered
    return found


# -- the text of a page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of a group: what is new, what still holds, what cleared."""

    kind: str  # first, update, repeat, storm, escalation
    labels: Mapping[str, str | None]
    new: Sequence[Mapping[str, Any]] = ()
    firing: Sequence[Mapping[str, Any]] = ()
    resolved: Sequence[Mapping[str, Any]] = ()
    flapping: Sequence[Mapping[str, Any]] = ()
    groups: Sequence[Mapping[str, Any]] = ()  # a compound's open constituents (`paged`: before)
    role: str | None = None  # escalation: the role paged, and after how long
    person: str | None = None
    waited: timedelta | None = None
    zone_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def incidents(self) -> list[Mapping[str, Any]]:
        return [*self.new, *self.firing, *self.resolved]

    @property
    def severity(self) -> str:
        return highest(i.get("severity", "") for i in [*self.new, *self.firing] or self.incidents)


AckLink = Callable[[Mapping[str, Any]], str | None]


def render(page: Page, dashboard_url: str, ack_link: AckLink | None = None) -> tuple[str, str]:
    """(subject, body): Vietnamese first, then English; each incident with its zone dashboard
    and how to acknowledge it (its one-tap link from `ack_link`, else the CLI command)."""
    zone = page.labels.get("zone")
    where = page.zone_names.get(zone or "", zone or "") if zone else "toàn tỉnh / city-wide"
    count = len(page.new) + len(page.firing)
    severity = page.severity
    first_step = page.kind == "escalation" and not (page.waited and page.waited > timedelta(0))
    tag = {"storm": "STORM", "escalation": "ON CALL" if first_step else "ESCALATION",
           "repeat": "REMINDER"}.get(page.kind, "")  # fmt: skip
    head = f"[{severity.upper()}]" + (f"[{tag}]" if tag else "")
    if page.kind == "storm":
        subject = f"{head} {count} sự cố / incidents city-wide"
    elif page.new and len(page.new) + len(page.firing) == 1:
        subject = f"{head} {page.new[0].get('title')} · {where}"
    elif not page.new and not page.firing and page.resolved:
        subject = f"[RESOLVED] {len(page.resolved)} sự cố đã hết / incidents cleared · {where}"
    elif not page.new and not page.firing:
        subject = f"{head} {len(page.flapping)} sự cố dao động / flapping · {where}"
    else:
        subject = f"{head} {count} sự cố / incidents · {where}"
    lines: list[str] = []
    if first_step:
        lines += [
            f"Bạn đang trực ({page.role}, {page.person}): sự cố dưới đây cần được xác nhận.",
            f"You are on call ({page.role}, {page.person}): the incidents below need "
            "acknowledging.",
            "",
        ]
    elif page.kind == "escalation":
        waited = _minutes(page.waited)
        lines += [
            f"Chuyển cấp: chưa ai xác nhận sau {waited} phút; gửi {page.role} ({page.person}).",
            f"Escalation: not acknowledged after {waited} min; paging {page.role} ({page.person}).",
            "",
        ]
    if page.kind == "storm":
        lines += _storm_summary(page)
    for title, title_en, items in [
        ("Mới", "New", page.new),
        ("Vẫn đang diễn ra", "Still open", page.firing),
        ("Đã hết", "Resolved", page.resolved),
    ]:
        if items:
            lines.append(f"== {title} / {title_en} ({len(items)}) ==")
            lines += [
                line for item in items[:50] for line in _item(item, page, dashboard_url, ack_link)
            ]
            if len(items) > 50:
                lines.append(f"... và {len(items) - 50} sự cố khác / and {len(items) - 50} more")
    if page.groups:
        lines.append("== Gộp vào sự cố tổng hợp này, không báo riêng / Grouped under this "
                     "compound incident, not paged on their own ==")  # fmt: skip
        lines += [
            f"- {g.get('title')} · {g.get('entity_id') or ''} ({g.get('id')})"
            + (" — đã báo trước / already paged" if g.get("paged") else "")
            for g in page.groups
        ]
    if page.flapping:
        lines.append("== Dao động, không báo lại / Flapping, not paged again ==")
        lines += [f"- {f.get('title')} · {f.get('zone_id')}: mở lại / re-opened "
                  f"{f.get('flap_count', 0)} lần / times" for f in page.flapping]  # fmt: skip
    return subject, "\n".join(lines) + "\n"


def _item(item: Mapping[str, Any], page: Page, dashboard_url: str,
          ack_link: AckLink | None) -> list[str]:  # fmt: skip
    zone = item.get("zone_id") or ""
    name = page.zone_names.get(zone, zone)
    description = item.get("description") or {}
    severity = item.get("severity", "")
    ack = (ack_link(item) if ack_link else None) or (
        f"ioc incidents ack {item.get('id')} --by <tên / name>"
    )
    lines = [
        f"* [{SEVERITY_VI.get(severity, severity)} / {severity}] {item.get('title')} · {name}",
        f"  VI: {description.get('vi', '')}",
        f"  EN: {description.get('en', '')}",
        f"  Mở lúc / opened {item.get('opened_at')} · lần / count {item.get('count')}"
        + (f" · hết lúc / resolved {item.get('resolved_at')}" if item.get("resolved_at") else ""),
    ]
    if zone:
        lines.append(f"  Bảng điều khiển / dashboard: {dashboard_url.format(zone=zone)}")
    if item.get("state") != "resolved":
        lines.append(f"  Xác nhận / acknowledge: {ack}")
    lines.append(f"  Mã / id: {item.get('id')}")
    return lines


def _storm_summary(page: Page) -> list[str]:
    items = [*page.new, *page.firing]
    zones = Counter(
        page.zone_names.get(i.get("zone_id") or "", i.get("zone_id") or "-") for i in items
    )
    domains = Counter(i.get("domain") or "unknown" for i in items)
    return [
        f"Bão sự cố: {len(items)} sự cố đang mở trên toàn tỉnh; gộp trong một trang.",
        f"Incident storm: {len(items)} open incidents city-wide, in one page.",
        "Theo khu vực / by zone: " + ", ".join(f"{z} {n}" for z, n in zones.most_common(10)),
        "Theo lĩnh vực / by domain: " + ", ".join(f"{d} {n}" for d, n in domains.most_common()),
        "",
    ]


def _minutes(value: timedelta | None) -> str:
    if value is None:
        return "0"
    minutes = value.total_seconds() / 60
    return f"{minutes:.0f}" if minutes >= 1 else f"{minutes:.2f}"
