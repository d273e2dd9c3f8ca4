"""A local SMTP receiver: aiosmtpd on its own thread, on 127.0.0.1, that accepts every message,
relays none, and records what arrived and when. `ioc demo` pages through it; the notifier's
tests use it too (tests/support/paging.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from streams.net import free_port


@dataclass
class Mail:
    received: float  # time.time() on arrival
    rcpt: list[str]
    message: Message

    @property
    def id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def notification_id(self) -> str | None:
        """The notifier's notification id (its X-IOC-Notification-Id header), if it has one."""
        value = self.message["X-IOC-Notification-Id"]
        return None if value is None else str(value)

    @property
    def subject(self) -> str:
        return str(make_header(decode_header(str(self.message["Subject"]))))

    @property
    def body(self) -> str:
        part = self.message.get_payload(decode=True)
        return part.decode() if isinstance(part, bytes) else str(self.message.get_payload())


@dataclass
class _Handler:
    delay: float = 0.0
    mails: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = Mail(time.time(), list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        with self.lock:
            self.mails.append(mail)
        if self.delay:
            await asyncio.sleep(self.delay)  # recorded now, answered later: a slow server
        return "250 OK"


class MailServer:
    """aiosmtpd on its own thread (a context manager); `mails` is everything received."""

    def __init__(self, port: int | None = None, *, sender: str = "ioc@localhost",
                 delay: float = 0.0) -> None:  # fmt: skip
        self.port = free_port() if port is None else port
        self.sender = sender
        self._handler = _Handler(delay)
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> MailServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, to: str) -> str:
        """The apprise URL that sends to `to` through this server (no TLS, no login)."""
        return f"mailto://127.0.0.1:{self.port}?to={to}&from={self.sender}&mode=insecure"

    @property
    def mails(self) -> list[Mail]:
        with self._handler.lock:
            return list(self._handler.mails)

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in m.rcpt]

    def wait_until(self, check: Callable[[list[Mail]], bool], timeout: float) -> bool:
        """Poll until `check(mails)` holds; False if it did not within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.mails):
                return True
            time.sleep(0.05)
        return check(self.mails)
