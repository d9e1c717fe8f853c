"""``sipscope analyze FILE``: the streaming engines run offline over one capture, no servers.

Messages come from the capture code (``producers.cli.file_records``: ``producers.pipeline.records_from``
or the native pcap path; SipMessage records only), sorted by capture time (stable: equal times keep capture order), then fed to
the :class:`~streams.engine.Correlator`; :meth:`~streams.engine.Correlator.flush_all` closes what is
still open at the end of the capture (``end_reason="capture_end"``).

Extra engines (KPIs, anomaly detectors) plug in without touching this module's flow: an engine is any
object with

* ``on_message(msg: SipMessage) -> Iterable[record]``  - every message, in time order;
* ``on_record(rec: CallSummary | Registration) -> Iterable[record]`` - every correlator output
  (interim call updates included);
* ``finish(now: float) -> Iterable[record]`` - end of the capture (``now`` = last event time);

returning :class:`~sipscope.records.StatsRow` (-> ``stats``) and :class:`~sipscope.records.Alert`
(-> ``alerts``) records. Engines written for the streaming worker's names are accepted as they are:
``feed_message(msg)``, ``feed_call(summary)`` / ``feed_registration(reg)`` and ``advance(now)`` (called
once at the end) stand in for the three methods above. Pass them as ``extra_engines=``, or register a factory
``(Settings) -> engine`` with :func:`register_engine` so that ``sipscope analyze`` uses it by default.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from sipscope.records import Alert, CallSummary, Registration, SipMessage, StatsRow
from sipscope.settings import CorrelationSettings, Settings
from streams.engine import Correlator


class ExtraEngine(Protocol):
    def on_message(self, msg: SipMessage) -> Iterable[Any]: ...

    def on_record(self, rec: CallSummary | Registration) -> Iterable[Any]: ...

    def finish(self, now: float) -> Iterable[Any]: ...


ENGINE_FACTORIES: list[Callable[[Settings], ExtraEngine]] = []
"""Factories of the extra engines ``sipscope analyze`` runs by default (see :func:`register_engine`)."""


def register_engine(factory: Callable[[Settings], ExtraEngine]) -> Callable[[Settings], ExtraEngine]:
    """Add an extra engine factory (usable as a decorator)."""
    if factory not in ENGINE_FACTORIES:
        ENGINE_FACTORIES.append(factory)
    return factory


@dataclass
class Report:
    calls: list[CallSummary] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    stats: list[StatsRow] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)
    """Input and engine counters (messages, rejected payloads, ignored messages...)."""


def load_messages(path: str, settings: Settings, keylog: str | None = None,
                  counters: dict[str, Any] | None = None) -> list[SipMessage]:
    """Every SIP message of a capture file, sorted by capture time (stable)."""
    from producers.cli import file_records
    from producers.pcap_source import Counters
    from producers.pipeline import Options, Stats
    from sipscope.numbers import NumberPlan

    opts = Options(plan=NumberPlan.from_settings(settings.numbering), node=settings.node,
                   correlation_headers=tuple(settings.correlation_headers), stage="analyze", source="analyze")
    stats, skipped = Stats(), Counters()
    msgs = [r for r in file_records(path, keylog, settings, opts, stats, skipped) if type(r) is SipMessage]
    msgs.sort(key=lambda m: m.ts)
    if counters is not None:
        counters["input"] = stats.as_dict() | {"skipped": dict(skipped)}
    return msgs


def analyze_messages(messages: Iterable[SipMessage], settings: CorrelationSettings | None = None,
                     extra_engines: Sequence[ExtraEngine] = ()) -> Report:
    """Run the correlator (and the extra engines) over messages already in time order."""
    corr = Correlator(settings)
    report = Report()
    engines = [_adapt(e) for e in extra_engines]

    def take(records: Iterable[Any]) -> None:
        for rec in records:
            if isinstance(rec, CallSummary):
                if rec.final:
                    report.calls.append(rec)
                for eng in engines:
                    _route(report, eng.on_record(rec))
            elif isinstance(rec, Registration):
                report.registrations.append(rec)
                for eng in engines:
                    _route(report, eng.on_record(rec))
            else:
                _route(report, (rec,))

    feed = corr.feed
    for msg in messages:
        for eng in engines:
            _route(report, eng.on_message(msg))
        out = feed(msg)
        if out:
            take(out)
    take(corr.flush_all())
    now = corr.watermark
    for eng in engines:
        _route(report, eng.finish(now))
    report.calls.sort(key=lambda c: (c.start_ts, c.call_id))
    report.registrations.sort(key=lambda r: (r.start_ts, r.call_id))
    report.counters["calls"] = dict(corr.calls.stats)
    report.counters["registrations"] = dict(corr.registrations.stats)
    return report


class _WorkerStyle:
    """An engine with ``feed_message`` / ``feed_call`` / ``feed_registration`` / ``advance`` methods."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def on_message(self, msg: SipMessage) -> Iterable[Any]:
        fn = getattr(self.engine, "feed_message", None)
        return fn(msg) if fn else ()

    def on_record(self, rec: CallSummary | Registration) -> Iterable[Any]:
        fn = getattr(self.engine, "feed_call" if isinstance(rec, CallSummary) else "feed_registration", None)
        return fn(rec) if fn else ()

    def finish(self, now: float) -> Iterable[Any]:
        fn = getattr(self.engine, "finish", None) or getattr(self.engine, "advance", None)
        return fn(now) if fn else ()


def _adapt(engine: Any) -> ExtraEngine:
    if all(hasattr(engine, name) for name in ("on_message", "on_record", "finish")):
        return engine
    return _WorkerStyle(engine)


def _route(report: Report, records: Iterable[Any] | None) -> None:
    for rec in records or ():
        if isinstance(rec, StatsRow):
            report.stats.append(rec)
        elif isinstance(rec, Alert):
            report.alerts.append(rec)
        else:
            raise TypeError(f"an extra engine returned {type(rec).__name__}; expected StatsRow or Alert")


def analyze_file(path: str, settings: Settings | None = None, keylog: str | None = None,
                 extra_engines: Sequence[ExtraEngine] | None = None) -> Report:
    """Read a capture and analyze it. ``extra_engines`` defaults to the registered factories."""
    from sipscope.settings import get_settings

    settings = settings if settings is not None else get_settings()
    counters: dict[str, Any] = {}
    msgs = load_messages(path, settings, keylog, counters)
    engines = [f(settings) for f in ENGINE_FACTORIES] if extra_engines is None else list(extra_engines)
    report = analyze_messages(msgs, settings.correlation, engines)
    report.counters = counters | report.counters
    return report


# -- output ---------------------------------------------------------------------------------------------

def call_json(call: CallSummary) -> dict[str, Any]:
    """Every field of the summary (None included) plus ``from_user`` / ``to_user`` aliases of
    ``caller`` / ``callee``."""
    d = msgspec.structs.asdict(call)
    d["from_user"] = call.caller
    d["to_user"] = call.callee
    return d


def report_json(report: Report) -> dict[str, Any]:
    """The ``--json`` document: ``calls``, ``registrations``, ``stats``, ``alerts``, ``summary``."""
    return {
        "calls": [call_json(c) for c in report.calls],
        "registrations": [msgspec.structs.asdict(r) for r in report.registrations],
        "stats": [msgspec.to_builtins(s) for s in report.stats],
        "alerts": [msgspec.to_builtins(a) for a in report.alerts],
        "summary": {
            "calls": len(report.calls),
            "outcomes": dict(sorted(Counter(c.outcome for c in report.calls).items())),
            "registrations": len(report.registrations),
            "registration_outcomes": dict(sorted(Counter(r.outcome for r in report.registrations).items())),
            "counters": report.counters,
        },
    }


def _t(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _n(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _cut(s: str | None, n: int) -> str:
    s = s or "-"
    return s if len(s) <= n else s[: n - 1] + "~"


def _table(headers: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def render_text(report: Report) -> str:
    """Human-readable report: a table of calls, one of registrations, then KPIs/alerts when present."""
    out: list[str] = []
    out.append(f"Calls ({len(report.calls)})")
    rows = [(_t(c.start_ts), _cut(c.call_id, 28), _cut(c.caller, 16), _cut(c.callee, 16), c.outcome,
             str(c.final_status or "-"), _n(c.pdd_ms, ".0f"), _n(c.ring_time_s, ".2f"), _n(c.duration_s, ".1f"),
             c.hangup_by or "-", c.end_reason, f"{c.messages}/{c.retransmissions}/{c.duplicates}",
             _cut(c.correlation_id, 20)) for c in report.calls]
    out += _table(["start (UTC)", "call-id", "from", "to", "outcome", "final", "pdd ms", "ring s", "dur s",
                   "hangup", "end", "msg/rtx/dup", "correlation"], rows)
    if report.calls:
        counts = Counter(c.outcome for c in report.calls)
        out.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    out.append("")
    out.append(f"Registrations ({len(report.registrations)})")
    rows = [(_t(r.start_ts), _cut(r.aor, 32), r.outcome, str(r.final_status or "-"), str(r.challenges),
             str(r.attempts), _n(r.rrd_ms, ".1f"), str(r.expires if r.expires is not None else "-"),
             f"{r.src_ip}:{r.src_port}", _cut(r.user_agent, 24)) for r in report.registrations]
    out += _table(["start (UTC)", "aor", "outcome", "final", "chall", "att", "rrd ms", "expires", "source",
                   "user agent"], rows)
    if report.stats:
        out.append("")
        out.append(f"KPI rows: {len(report.stats)}")
    if report.alerts:
        out.append("")
        out.append(f"Alerts ({len(report.alerts)})")
        out += _table(["ts (UTC)", "name", "status", "severity", "subject", "observed"],
                      [(_t(a.ts), a.name, a.status, a.severity, f"{a.subject_type}:{a.subject}", f"{a.observed:g}")
                       for a in report.alerts])
    return "\n".join(out) + "\n"


def _register_default_engines() -> None:
    """KPIs and anomaly detection run in `sipscope analyze` by default (the worker runs the same engines)."""
    from streams.anomaly.engine import AnomalyEngine
    from streams.kpis import KpiRollup

    register_engine(KpiRollup.from_settings)
    register_engine(AnomalyEngine.from_settings)


_register_default_engines()
