"""structlog set-up: key=value lines (or JSON) on stderr, with context bound by callers."""

from __future__ import annotations

import logging
import sys

import structlog


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
