"""The incident API served by a real uvicorn server on 127.0.0.1, on a thread of the test."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from api.app import create_app, wrap
from rules import load_rule_files
from streams.settings import Settings
from tests.support.database import free_port


@contextlib.contextmanager
def api_server(settings: Settings, rules: str = "rules: []") -> Iterator[str]:
    """Serve the API for `settings` (its database, its keys); yields the base URL."""
    port = free_port()
    app = wrap(create_app(settings, load_rule_files([("api-rules.yaml", rules)])), settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False,
                            log_level="warning", lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
