"""The one-tap link's pages: a confirmation with one button, and the result. Plain HTML with
inline CSS: no script, nothing loaded from elsewhere, readable on a phone."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px;
background:#f4f5f7;color:#1d2330;font-size:17px;line-height:1.45}
main{max-width:560px;margin:0 auto;background:#fff;border-radius:12px;padding:20px;
box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.25rem;margin:0 0 .5rem}
.sev{display:inline-block;padding:2px 10px;border-radius:99px;font-weight:600;color:#fff;
background:#6b7280}
.sev.critical{background:#b91c1c}.sev.high{background:#c2410c}.sev.medium{background:#a16207}
p.lang{margin:.6rem 0}p.lang b{display:inline-block;min-width:2em;color:#4b5563}
dl{display:grid;grid-template-columns:auto 1fr;gap:4px 12px;margin:1rem 0;font-size:.95rem}
dt{color:#4b5563}dd{margin:0}
button{width:100%;min-height:56px;font-size:1.15rem;font-weight:600;border:0;border-radius:10px;
background:#1d4ed8;color:#fff;margin-top:8px}
.note{font-size:.9rem;color:#4b5563;margin-top:1rem}
.ok{color:#15803d}.bad{color:#b91c1c}
"""


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def confirm(incident: dict[str, Any], officer: str, expires: datetime, zone_name: str | None,
            timezone: str) -> str:  # fmt: skip
    """GET: the incident's summary in Vietnamese and English, and one button that POSTs. Times
    are shown in `timezone` (the center's)."""
    local = ZoneInfo(timezone)
    opened = incident["opened_at"].astimezone(local)
    until = f"{expires.astimezone(local):%H:%M %d/%m/%Y} ({timezone})"
    zone = zone_name or incident["zone_id"] or "-"
    severity = escape(incident["severity"])
    body = f"""
<h1>{escape(incident["title"])}</h1>
<span class="sev {severity}">{severity}</span>
<p class="lang"><b>VI</b> {escape(incident["description_vi"])}</p>
<p class="lang"><b>EN</b> {escape(incident["description_en"])}</p>
<dl>
<dt>Khu vực / zone</dt><dd>{escape(zone)}</dd>
<dt>Trạng thái / state</dt><dd id="state">{escape(incident["state"])}</dd>
<dt>Mở lúc / opened</dt><dd>{opened:%H:%M:%S %d/%m/%Y}</dd>
<dt>Số lần / count</dt><dd>{incident["count"]}</dd>
<dt>Người nhận / officer</dt><dd>{escape(officer)}</dd>
</dl>
<form method="post"><button type="submit" id="ack">Xác nhận đã nhận / Acknowledge</button></form>
<p class="note">Liên kết dùng một lần, hết hạn lúc {escape(until)}.<br>
One use only; it expires at {escape(until)}.</p>"""
    return _document(f"Xác nhận / Acknowledge: {incident['title']}", body)


def result(ok: bool, vi: str, en: str) -> str:
    cls = "ok" if ok else "bad"
    body = f'<h1 class="{cls}" id="result">{escape(vi)}</h1><p>{escape(en)}</p>'
    return _document(en, body)
