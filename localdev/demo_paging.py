"""The demo's paging: a local SMTP server, `ioc notifier` as a child process sending to it with the
demo's paging file (localdev/demo-paging.yaml, its durations scaled to the run's length), and
an account of the pages the SMTP server received.

The verdict, for the scenario's zone: ONE grouped page (kind `first`) that lists every incident
the scenario opened in the zone, no later page announcing any other incident of the zone (updates
only follow up: resolutions), no storm page; and the escalation chain's first role paged with it,
then exactly one escalation step (the chain's second role), and no further one.

The demo also runs `ioc api serve` (a child process) and gives the notifier its link key and
address, so every page carries one-tap links. When the chain pages its second role for the
scenario's zone, the demo plays that officer: it opens the link in the page (a GET, which shows
the confirmation page and changes nothing) and presses the button (the POST), which acknowledges
the incident through the channel `link` and stops the chain; the verdict requires it.

Before the notifier starts, what earlier runs left in the local runtime's paging tables is
settled, so that this run pages only what it causes: outbox transitions never routed (an earlier
demo without a notifier) are marked routed, and page groups still active are closed (their
escalation stopped). Both counts are printed. Notifications left unsent are sent, to this run's
server, and appear in the table as another group's.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.rows import dict_row
from rich.table import Table

from localdev.mail import Mail, MailServer
from localdev.processes import ChildCommand, wait_http_ok
from localdev.runtime import RuntimeProblem
from paging.load import parse_paging
from paging.model import Notify, PagingConfig
from rules.model import parse_duration
from streams.net import free_port
from streams.settings import Settings

DEMO_PAGING = Path(__file__).with_name("demo-paging.yaml")
#: the run length the file's durations are written for; a scripted scenario's event time spans
#: 55 minutes whatever the run's length, so its wall-time pace scales with the length
TUNED_FOR_S = 60.0
SCRIPT_SPAN_S = 3300.0
#: secret -> the address the demo's SMTP server receives it at
ADDRESSES = {
    "center_mail": "center@ioc.demo",
    "officer_mail": "duty-officer@ioc.demo",
    "lead_mail": "shift-lead@ioc.demo",
    "director_mail": "director@ioc.demo",
}
GROUP_PAGES = ("first", "update", "repeat", "storm")


def _seconds(value: Any) -> str:
    return f"{parse_duration(value).total_seconds():g}s"


def demo_paging(duration_s: float) -> tuple[str, PagingConfig]:
    """The demo's paging file with its waits scaled to a run of `duration_s`: (YAML, parsed)."""
    factor = min(duration_s, SCRIPT_SPAN_S) / TUNED_FOR_S
    document = yaml.safe_load(DEMO_PAGING.read_text())
    grouping = document["grouping"]
    for key in ("group_wait", "critical_group_wait", "group_interval"):
        grouping[key] = _seconds(parse_duration(grouping[key]).total_seconds() * factor)
    for policy in document["policies"].values():
        for step in policy["steps"]:
            if "wait" in step:
                step["wait"] = _seconds(parse_duration(step["wait"]).total_seconds() * factor)
    text = f"# {DEMO_PAGING.name}, its waits scaled by {factor:g} for a {duration_s:g}-s run\n"
    text += yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    return text, parse_paging(text, str(DEMO_PAGING))


# -- before the run -------------------------------------------------------------------------------

SETTLE_OUTBOX = "UPDATE incident_outbox SET paged_at = now() WHERE paged_at IS NULL"
SETTLE_GROUPS = """
UPDATE page_groups SET state = 'closed', closed_at = now(), next_flush_at = NULL,
  escalation_state = CASE WHEN escalation_state = 'running' THEN 'stopped'
                          ELSE escalation_state END,
  escalation_due_at = NULL,
  escalation_note = coalesce(escalation_note, 'closed by ioc demo before a new run')
WHERE state = 'active'"""


def settle_earlier(settings: Settings) -> tuple[int, int]:
    """Mark earlier transitions routed and close earlier active groups: (transitions, groups)."""
    with psycopg.connect(settings.db.conninfo("owner")) as conn:
        transitions = conn.execute(SETTLE_OUTBOX).rowcount
        groups = conn.execute(SETTLE_GROUPS).rowcount
    return transitions, groups


@dataclass(frozen=True)
class LinkAck:
    """The demo's officer acknowledging through a page's one-tap link."""

    at: datetime
    officer: str  # who the link names
    incident: str
    shown: bool  # the GET showed the confirmation page and left the incident open
    done: bool  # the POST acknowledged
    answer: str  # the result page's heading
    stopped: bool = False  # the zone's escalation stopped, as acknowledged


class DemoPaging:
    """The SMTP server, `ioc notifier` and `ioc api serve` (child processes) for one demo run."""

    def __init__(self, settings: Settings, work: Path, duration_s: float,
                 zone: str | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.zone = zone
        self.text, self.config = demo_paging(duration_s)
        self.file = work / "paging.yaml"
        self.mail = MailServer(sender="ioc@ioc.demo")
        self.api_url = f"http://127.0.0.1:{free_port()}"
        env = dict(os.environ)
        env["IOC_PAGING__FILE"] = str(self.file)
        for secret in self.config.secret_names():
            env[f"IOC_PAGING__SECRETS__{secret.upper()}"] = self.mail.url(ADDRESSES[secret])
        # keys made for this run only; the API signs and checks the links the notifier writes
        env["IOC_API__LINK_KEY"] = secrets.token_urlsafe(32)
        env["IOC_API__TOKEN_KEY"] = secrets.token_urlsafe(32)
        env["IOC_API__PUBLIC_URL"] = self.api_url
        env["IOC_API__PORT"] = self.api_url.rpartition(":")[2]
        self.notifier = ChildCommand(["notifier"], work / "notifier.log", env)
        self.api = ChildCommand(["api", "serve"], work / "api.log", env)
        self.started = datetime.now(UTC)
        self.link_ack: LinkAck | None = None
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def chain(self) -> list[str]:
        """The roles of the route's policy, in the order the chain pages them."""
        policy = self.config.policies[self.config.routes[0].policy or ""]
        return [step.notify for step in policy.steps if isinstance(step, Notify)]

    def start(self, timeout: float = 60.0) -> DemoPaging:
        self.file.write_text(self.text)
        self.mail.start()
        self.api.log_path.unlink(missing_ok=True)
        self.api.start()
        try:
            wait_http_ok(f"{self.api_url}/healthz", timeout=timeout, child=self.api)
        except RuntimeProblem:
            self.stop()
            raise
        self.notifier.log_path.unlink(missing_ok=True)
        self.notifier.start()
        self.started = datetime.now(UTC)
        deadline = time.monotonic() + timeout
        while "notifier.started" not in _read(self.notifier.log_path):
            if not self.notifier.running():
                self.stop()
                raise RuntimeProblem(f"the notifier exited:\n{self.notifier.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeProblem(f"the notifier did not start; see {self.notifier.log_path}")
            time.sleep(0.2)
        if self.zone is not None and len(self.chain) > 1:
            self._watch = threading.Thread(target=self._acknowledge, daemon=True)
            self._watch.start()
        return self

    def _acknowledge(self) -> None:
        """Wait for the chain's second role's page for the zone; open its link, press the button."""
        role = self.chain[1]
        while not self._stop.wait(0.2):
            page = next((p for p in received_pages(self.settings, self.mail.mails)
                         if p.kind == "escalation" and p.role == role and p.zone == self.zone),
                        None)  # fmt: skip
            if page is None:
                continue
            found = LINK.search(page.body)
            if found is None:
                self.link_ack = LinkAck(datetime.now(UTC), "", "", False, False,
                                        "the page carries no link")  # fmt: skip
                return
            url, incident = found.group(0), found.group(1)
            shown_page = _http("GET", url)
            with psycopg.connect(self.settings.db.conninfo("owner")) as conn:
                row = conn.execute("SELECT state FROM incidents WHERE id = %s",
                                   (incident,)).fetchone()  # fmt: skip
            shown = shown_page[0] == 200 and "<form" in shown_page[1] and row == ("open",)
            status, html = _http("POST", url)
            heading = re.search(r"<h1[^>]*>(.*?)</h1>", html)
            answer = heading.group(1) if heading else f"HTTP {status}"
            officer = answer.rpartition(": ")[2] if status == 200 else ""
            self.link_ack = LinkAck(datetime.now(UTC), officer, incident, shown, status == 200,
                                    answer, self._stopped())  # fmt: skip
            return

    def _stopped(self, timeout: float = 10.0) -> bool:
        """Whether the zone's chain (this run's group) stops as acknowledged within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(self.settings.db.conninfo("owner")) as conn:
                found = conn.execute(
                    "SELECT count(*) FROM page_groups WHERE labels->>'zone' = %s "
                    "AND created_at >= %s AND escalation_state = 'stopped' "
                    "AND escalation_note = 'acknowledged'", (self.zone, self.started),
                ).fetchone()  # fmt: skip
            if found and found[0]:
                return True
            time.sleep(0.2)
        return False

    def settle(self, zone: str | None, timeout: float) -> None:
        """Wait (at most `timeout`) until the zone's groups of this run have nothing to do
        within a group_interval and no due page is unsent, so that the table shows the story
        (a later step, such as the director's, is beyond the demo)."""
        params = {"zone": zone, "since": self.started, "soon": self.config.grouping.group_interval}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.notifier.running():
            with psycopg.connect(self.settings.db.conninfo("owner")) as conn:
                busy, unsent = conn.execute(SETTLED, params).fetchone() or (0, 0)
            if not busy and not unsent:
                return
            time.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.join(10)
        self.notifier.stop(15)
        self.api.stop(15)
        self.mail.stop()


LINK = re.compile(r"http://127\.0\.0\.1:\d+/l/([0-9a-f-]{36})/[A-Za-z0-9_.-]+")


def _http(method: str, url: str) -> tuple[int, str]:
    """A plain HTTP call, as a phone's browser makes it (the demo's officer)."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# Something the zone's groups of this run will do within %(soon)s, or a page due and unsent.
SETTLED = """
SELECT
  (SELECT count(*) FROM page_groups
   WHERE state = 'active' AND labels->>'zone' = %(zone)s AND created_at >= %(since)s
     AND (next_flush_at <= now() + %(soon)s
          OR (escalation_state = 'running' AND escalation_due_at <= now() + %(soon)s))),
  (SELECT count(*) FROM notifications WHERE sent_at IS NULL AND next_attempt_at <= now())"""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# -- what arrived ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedPage:
    """One e-mail the demo's SMTP server received, with what the notifier wrote it as."""

    at: datetime
    to: str
    kind: str  # first, update, repeat, storm, escalation; "unknown" if no notification has its id
    role: str | None  # escalation: the on-call role paged
    zone: str | None  # the page group's zone
    incidents: frozenset[str]
    subject: str
    body: str = ""


NOTIFICATIONS = """
SELECT n.id::text AS id, n.kind, n.receiver, n.incidents::text[] AS incidents,
  g.labels->>'zone' AS zone
FROM notifications n LEFT JOIN page_groups g ON g.id = n.group_id
WHERE n.id = ANY(%s::uuid[])"""


def received_pages(settings: Settings, mails: list[Mail]) -> list[ReceivedPage]:
    """The mails in order of arrival, each with its notification's kind, role, zone, incidents."""
    ids = [m.notification_id for m in mails if m.notification_id]
    with (
        psycopg.connect(settings.db.conninfo("owner")) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        rows = {r["id"]: r for r in cur.execute(NOTIFICATIONS, (ids,)).fetchall()}
    pages = []
    for mail in sorted(mails, key=lambda m: m.received):
        row = rows.get(mail.notification_id or "", {})
        kind = row.get("kind", "unknown")
        pages.append(
            ReceivedPage(
                at=datetime.fromtimestamp(mail.received, UTC),
                to=", ".join(mail.rcpt),
                kind=kind,
                role=row["receiver"].split(":", 1)[0] if kind == "escalation" else None,
                zone=row.get("zone"),
                incidents=frozenset(row.get("incidents") or ()),
                subject=mail.subject,
                body=mail.body,
            )
        )
    return pages


MEMBERS = """
SELECT incident_id::text, coalesce(muted_by, '') FROM page_members
WHERE incident_id = ANY(%s::uuid[])"""


def muted(settings: Settings, incidents: list[str]) -> dict[str, str]:
    """Why each of `incidents` was muted (`inhibited:<compound id>`, `flapping`, `silence:<id>`;
    empty: it was not); an incident the notifier never routed is absent."""
    with psycopg.connect(settings.db.conninfo("owner")) as conn:
        return dict(conn.execute(MEMBERS, (incidents,)).fetchall())


def link_verdict(ack: LinkAck | None, role: str) -> tuple[bool, str]:
    """Whether the demo's officer (the chain's `role`) acknowledged through the page's link."""
    if ack is None:
        return False, f"LINK MISMATCH: no page to {role} with a link arrived for the zone"
    problems = []
    if not ack.shown:
        problems.append("opening the link did not show the confirmation page, or changed the "
                        "incident")  # fmt: skip
    if not ack.done:
        problems.append(f"pressing its button answered: {ack.answer}")
    if ack.done and not ack.stopped:
        problems.append("the chain did not stop")
    if problems:
        return False, "LINK MISMATCH: " + "; ".join(problems)
    return True, (
        f"{ack.officer} ({role}) opened the page's one-tap link, which showed the incident and "
        f"changed nothing, and pressed its button: incident {ack.incident[:8]} was acknowledged "
        "through the link, and the chain stopped."
    )


def page_verdict(
    pages: list[ReceivedPage], zone: str, incidents: set[str], mutes: dict[str, str],
    chain: list[str],
) -> tuple[bool, str]:  # fmt: skip
    """Whether the scenario's `incidents` (ids) in `zone` came to ONE page, the rest being
    muted by inhibition (the compound incident groups its constituents) or cleared before the
    group's next page; and whether the chain paged its first role with that page and escalated
    exactly once (to its second role); with a sentence that says so."""
    mine = [p for p in pages if p.zone == zone]
    group_pages = [p for p in mine if p.kind in GROUP_PAGES]
    introduced: dict[str, ReceivedPage] = {}
    for page in group_pages:
        for incident in page.incidents & incidents:
            introduced.setdefault(incident, page)
    announcing = list({id(p): p for p in introduced.values()}.values())
    storms = [p for p in pages if p.kind == "storm"]
    roles = [p.role for p in mine if p.kind == "escalation"]
    expected_roles = chain[:2]
    problems: list[str] = []
    if storms:
        problems.append(f"{len(storms)} storm page(s)")
    if len(announcing) != 1:
        problems.append(f"{len(announcing)} pages announced the scenario's incidents, not one")
    if roles != expected_roles:
        problems.append(
            f"the chain paged {', '.join(map(str, roles)) or 'nobody'}, not "
            f"{' then '.join(expected_roles)}"
        )
    if problems:
        return False, f"PAGING MISMATCH for zone {zone}: " + "; ".join(problems)
    (page,) = announcing
    listed = incidents & page.incidents
    inhibited = sum(1 for i in incidents - listed if mutes.get(i, "").startswith("inhibited"))
    unpaged = len(incidents) - len(listed) - inhibited
    escalation = [p for p in mine if p.kind == "escalation"][-1]
    after = (escalation.at - page.at).total_seconds()
    return True, (
        f"ONE page (kind {page.kind}) for the {len(incidents)} incidents of the scenario in zone "
        f"{zone}: it lists {len(listed)}; {inhibited} are muted by inhibition (constituents of "
        "the compound incident it lists)"
        + (f" and {unpaged} cleared before the group's next page" if unpaged else "")
        + f". The chain paged {expected_roles[0]} with it and, nobody acknowledging, escalated "
        f"exactly once: to {expected_roles[1]}, {after:.0f} s later"
        + (f"; {chain[2]} was not paged" if len(chain) > 2 else "")
    )


def pages_table(
    pages: list[ReceivedPage], since: datetime, zone: str | None, verdict: str | None
) -> Table:
    """The pages the demo's SMTP server received: when (UTC, and seconds into the run), to
    whom, what kind (the escalation's role), how many incidents, and the subject."""
    table = Table(
        title=f"pages received by the demo's SMTP server (+s: seconds after the notifier started;"
        f" zone {zone} is the scenario's)"
    )
    for column in ("time", "+s", "to", "kind", "zone", "incidents", "subject"):
        table.add_column(column, justify="right" if column in ("+s", "incidents") else "left")
    for page in pages:
        kind = f"escalation: {page.role}" if page.kind == "escalation" else page.kind
        table.add_row(
            page.at.strftime("%H:%M:%S"), f"{(page.at - since).total_seconds():.1f}", page.to,
            kind, page.zone or "-", str(len(page.incidents)), page.subject,
        )  # fmt: skip
    if not pages:
        table.add_row("-", "", "", "no page received", "", "", "")
    table.caption = verdict
    return table
