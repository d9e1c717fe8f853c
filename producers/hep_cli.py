"""``sipscope hep``: run the HEP collector until interrupted (the lead wires :func:`run_hep` into the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from producers.hep_collector import DEFAULT_LISTEN, serve
from producers.metrics import start_metrics_server
from producers.sinks import Sink
from sipscope.logs import get_logger
from sipscope.numbers import NumberPlan
from sipscope.settings import get_settings

log = get_logger(__name__)


def run_hep(
    listen: str = DEFAULT_LISTEN,
    sink_kind: str = "jsonl",
    out_path: str | None = None,
    auth_key: str | None = None,
) -> int:
    """Collect HEP on ``listen`` (UDP + TCP) into ``sink_kind`` until SIGINT/SIGTERM; returns the exit code.

    ``jsonl`` writes to ``out_path`` (appended), or stdout when it is ``None`` or ``-``. ``auth_key``, when
    set, is required on every packet (HEPv3 chunk 0x000e).
    """
    settings = get_settings()
    if auth_key is None and settings.hep_auth_key is not None:
        auth_key = settings.hep_auth_key.get_secret_value()
    sink = _make_sink(sink_kind, out_path)
    plan = NumberPlan.from_settings(settings.numbering)
    start_metrics_server(settings.metrics_port, settings.metrics_host)
    try:
        coro = serve(listen, sink, auth_key, plan, settings.node, settings.correlation_headers)
        asyncio.run(_until_signalled(coro))
    finally:
        sink.close()
    return 0


def _make_sink(sink_kind: str, out_path: str | None) -> Sink:
    from producers.cli import open_sink

    return open_sink(sink_kind, out_path, get_settings())


async def _until_signalled(coro) -> None:
    """Run ``coro`` until it ends or SIGINT/SIGTERM cancels it (its ``finally`` blocks then run)."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("hep_collector_stopped")
