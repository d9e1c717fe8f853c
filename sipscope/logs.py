"""Structured logging (structlog): JSON lines on stderr by default, console format on request."""

from __future__ import annotations

import logging
import sys

import structlog

from sipscope.settings import get_settings


class _StderrLogger:
    """Writes each rendered line to the *current* ``sys.stderr`` (never stdout: `sipscope parse` owns it;
    and never a stream captured once, which a test harness may have closed since)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _factory(*_args) -> _StderrLogger:
    return _StderrLogger()


def configure_logging() -> None:
    settings = get_settings()
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    renderer = structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_factory,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str):
    return structlog.get_logger(name)
