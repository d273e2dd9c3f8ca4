"""Real receivers for the notifier's tests: an SMTP server (aiosmtpd) and an HTTP webhook server,
both on 127.0.0.1, recording what arrives and when."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.database import free_port


@dataclass
class Mail:
    received: float  # time.time() on arrival
    rcpt: list[str]
    message: Message

    @property
    def id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def subject(self) -> str:
        from email.header import decode_header, make_header

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
        await asyncio.sleep(self.delay)
        return "250 OK"


class MailServer:
    """aiosmtpd on its own thread; `mails` is everything received. With `delay`, each mail is
    recorded when its data has arrived and answered `delay` seconds later (a slow server: a
    sender killed in between has delivered a mail it never saw accepted)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.port = free_port()
        self._handler = _Handler(delay)
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def url(self, to: str) -> str:
        """The apprise URL that sends to `to` through this server (no TLS, no login)."""
        return f"mailto://127.0.0.1:{self.port}?to={to}&from=ioc@notifier.test&mode=insecure"

    @property
    def mails(self) -> list[Mail]:
        with self._handler.lock:
            return list(self._handler.mails)

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in m.rcpt]

    async def wait_for(
        self, check: Callable[[list[Mail]], bool], timeout: float = 20.0
    ) -> list[Mail]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.mails
            if check(mails):
                return mails
            await asyncio.sleep(0.05)
        raise AssertionError(f"mail server: condition not met in {timeout} s; got "
                             f"{[(m.rcpt, m.subject) for m in self.mails]}")  # fmt: skip


@dataclass
class Hook:
    received: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the server answered


class WebhookServer:
    """A real HTTP server (the standard library's) that answers 200, or `status` while set."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hooks: list[Hook] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = outer.status
                outer.hooks.append(
                    Hook(time.time(), self.path, dict(self.headers.items()), body, status)
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"
