"""Real receivers for the notifier's tests: an SMTP server (aiosmtpd, the one `ioc demo` uses)
and an HTTP webhook server, both on 127.0.0.1, recording what arrives and when."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localdev import mail as local_mail
from localdev.mail import Mail
from tests.support.database import free_port


class MailServer(local_mail.MailServer):
    """The local SMTP receiver (localdev.mail), awaited from the tests' event loop. With
    `delay`, each mail is recorded when its data has arrived and answered `delay` seconds later
    (a slow server: a sender killed in between has delivered a mail it never saw accepted)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(sender="ioc@notifier.test", delay=delay)

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
