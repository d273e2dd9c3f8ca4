"""structlog set-up: key=value lines (or JSON) on stderr, with context bound by callers."""

from __future__ import annotations

import logging
import sys

import structlog


class OncePerInterval(logging.Filter):
    """Let a logger's record of a given message template through once per `interval_s`; the
    next one that passes says how many were held back. During a broker outage aiokafka repeats
    the same few warnings about 60 times a second ("Unable connect to node", "Failed fetch
    messages", ...); the worker's own outage lines (streams.retry.OutageLog) say it once."""

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    #: Loggers whose records it limits; the others pass untouched.
    prefixes = ("aiokafka", "kafka")

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        now = record.created
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.interval_s:.0f}s)"
        return True


class _Stderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was configured: loggers
    are cached on first use, and a stream swapped in for a while (typer's CliRunner, pytest's
    capture) would otherwise keep receiving their lines after it was closed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.processors.LogfmtRenderer(key_order=["timestamp", "level", "event"])
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    if level != "DEBUG":
        # aiokafka narrates every group join and partition assignment at INFO.
        for name in ("aiokafka", "kafka"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # A new broker answers the first group request with "coordinator not available" while it
        # creates __consumer_offsets; aiokafka retries by itself but logs it at ERROR.
        logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(
            lambda record: "GroupCoordinatorNotAvailableError" not in record.getMessage()
        )
    for (
        handler
    ) in logging.getLogger().handlers:  # a filter on a handler sees every logger's records
        if not any(isinstance(f, OncePerInterval) for f in handler.filters):
            handler.addFilter(OncePerInterval())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        # not cached: a test's structlog.testing.capture_logs must see every logger, and the
        # pipeline logs per outage or per rejected batch, never per event
        cache_logger_on_first_use=False,
    )
