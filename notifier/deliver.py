"""Sending one notification to one apprise URL, carrying its notification id.

- E-mail (mailto://, mailtos://): apprise reads the URL (its syntax, its provider defaults), and the
  message is sent with the standard library's smtplib, because apprise sets its own Message-ID
  and a second one cannot replace it. The Message-ID is `<notification id@ioc-notifier>`, so a
  page sent again after a crash is recognisable as the same message; `X-IOC-Notification-Id`
  carries the bare id.
- Everything else (json://, form://, tgram://, slack://, ...): apprise sends it. Webhooks (json,
  form, xml) get an `Idempotency-Key: <notification id>` header. Chat services have no such
  header; a resend there shows twice.

Errors never carry the URL (it holds secrets): `DeliveryError` names the scheme and host only.

Sends run on the notifier's own threads, `SENDS_AT_ONCE` of them, and a delivery claims no more
notifications than that: each send starts at once, so its time limit is spent sending, not
waiting for a thread (the event loop's default pool has min(32, cpu_count + 4) threads, and
others use it too).
"""

from __future__ import annotations

import asyncio
import functools
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import apprise

WEBHOOKS = {"json", "jsons", "form", "forms", "xml", "xmls"}

#: Notifications one delivery claims and sends together, each on its own thread.
SENDS_AT_ONCE = 20


class DeliveryError(Exception):
    """A send failed; the message is safe to log and store (no URL, no secret)."""


@dataclass(frozen=True)
class Message:
    id: str
    subject: str
    body: str


def describe(url: str) -> str:
    """scheme://host of an apprise URL, with no user, password, token or path."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    return f"{scheme}://{host}" if scheme in {"mailto", "mailtos", *WEBHOOKS} else f"{scheme}://"


def _plugin(url: str) -> Any:
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise DeliveryError(f"{describe(url)}: apprise does not understand this URL")
    return plugin


def check_url(url: str) -> None:
    """Raise DeliveryError if apprise cannot read `url` (at start-up, before any page)."""
    _plugin(url)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context (loading the system's certificates costs tens of ms), made on first use."""
    return ssl.create_default_context()


def _send_mail(plugin: Any, message: Message, mail_from: str, timeout: float) -> None:
    sender = plugin.from_addr[1] if plugin.from_addr and plugin.from_addr[1] else mail_from
    targets = [address for _name, address in (plugin.targets or [])] or [sender]
    email = EmailMessage()
    email["Subject"] = message.subject
    email["From"] = formataddr(("IOC", sender))
    email["To"] = ", ".join(targets)
    email["Date"] = format_datetime(datetime.now(UTC))
    email["Message-ID"] = f"<{message.id}@ioc-notifier>"
    email["X-IOC-Notification-Id"] = message.id
    email.set_content(message.body)
    mode = plugin.secure_mode if plugin.secure else "insecure"
    smtp_class = smtplib.SMTP_SSL if mode == "ssl" else smtplib.SMTP
    kwargs: dict[str, Any] = {"context": _tls()} if mode == "ssl" else {}
    with smtp_class(plugin.smtp_host, plugin.port, timeout=timeout, **kwargs) as smtp:
        if mode == "starttls":
            smtp.starttls(context=_tls())
        if plugin.user and plugin.password:
            smtp.login(plugin.user, plugin.password)
        smtp.send_message(email, from_addr=sender, to_addrs=targets)


def _send_apprise(plugin: Any, scheme: str, message: Message) -> None:
    if scheme in WEBHOOKS:
        plugin.headers["Idempotency-Key"] = message.id
    if not plugin.notify(body=message.body, title=message.subject):
        raise DeliveryError("the service refused the notification or could not be reached")


def send_sync(url: str, message: Message, *, mail_from: str, timeout: float) -> None:
    plugin = _plugin(url)
    scheme = url.partition("://")[0].lower()
    try:
        if scheme in {"mailto", "mailtos"}:
            _send_mail(plugin, message, mail_from, timeout)
        else:
            plugin.socket_connect_timeout = plugin.socket_read_timeout = timeout
            _send_apprise(plugin, scheme, message)
    except DeliveryError as exc:
        raise DeliveryError(f"{describe(url)}: {exc}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{describe(url)}: {type(exc).__name__}: {_safe(exc, url)}") from None


def _safe(exc: Exception, url: str) -> str:
    text = str(exc)
    for part in (url, *url.replace("://", "/").replace("@", "/").replace(":", "/").split("/")):
        if len(part) >= 6:
            text = text.replace(part, "***")
    return text[:300]


@functools.cache
def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(SENDS_AT_ONCE, thread_name_prefix="ioc-send")


async def send(url: str, message: Message, *, mail_from: str, timeout: float) -> None:
    """Send in a thread (smtplib and apprise block); raises DeliveryError."""
    call = functools.partial(send_sync, url, message, mail_from=mail_from, timeout=timeout)
    await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(_threads(), call),
                           timeout + 5)  # fmt: skip
