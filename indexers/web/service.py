"""What the pages and the API ask for, computed once for both: trace pages, a call, alerts, KPIs.

Each function takes the app :class:`~indexers.web.app.Context` and validated-or-raw inputs, and returns
plain data. Bad input raises :class:`~indexers.errors.QueryError`; Elasticsearch trouble raises
:class:`~indexers.web.queries.SearchUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from indexers.search import Page, TimeRange
from indexers.web import charts, forms, ladder, queries
from indexers.web.pcapout import Packet, iso_to_us, write_pcap
from indexers.web.textout import call_text

if TYPE_CHECKING:
    from indexers.web.app import Context

TRACE_FIELDS = ("id", "ts", "method", "status_code", "reason", "cseq_method", "from_user", "from_display", "to_user",
                "to_display", "ruri_user", "user_agent", "src_ip", "src_port", "dst_ip", "dst_port", "transport",
                "call_id", "correlation_id", "node")


@dataclass
class TraceResult:
    page: Page
    rows: list[dict[str, Any]]
    next_cursor: str | None
    page_no: int
    capped: bool
    """The next page exists but lies beyond ``max_results``."""
    note: str | None = None


def trace(c: Context, number: str, *, last: str | None = None, start: str | None = None, end: str | None = None,
          registrations: bool = False, cursor: str | None = None, page_no: int = 1, size: int | None = None,
          default_last: str = "1h") -> TraceResult:
    web = c.settings.web
    size = max(1, min(size or web.page_size, 500))
    page_no = max(1, page_no)
    rng, note = forms.resolve_range(last, start, end, retention_days=c.settings.elasticsearch.retention_days,
                                    default=default_last)
    after = forms.decode_cursor(cursor)
    page = queries.guard(c.searcher.search, "messages", number, start=rng.start.isoformat(), end=rng.end.isoformat(),
                         registrations=registrations, whole_calls=True, size=size, after=after, with_raw=False)
    rows = [{k: d.get(k) for k in TRACE_FIELDS} for d in page.hits]
    capped = page.next_after is not None and page_no * size >= web.max_results
    nxt = None if capped else forms.encode_cursor(page.next_after)
    return TraceResult(page, rows, nxt, page_no, capped, note)


# ---------------------------------------------------------------------------------------------- a call

@dataclass
class CallView:
    data: queries.CallData
    ladder: ladder.Ladder
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Per message: the document, ``n`` (1-based), ``kind``, ``label``, ``src``/``dst`` hosts, ``status``
    explanation and ``lines`` (annotated raw text)."""


def _msg(d: dict[str, Any]) -> ladder.Msg:
    return ladder.Msg(
        id=d.get("id", ""), ts=iso_to_us(d["ts"]) / 1e6, src=ladder.host(d["src_ip"], d["src_port"]),
        dst=ladder.host(d["dst_ip"], d["dst_port"]), call_id=d["call_id"], node=d.get("node", ""), raw=d.get("raw", ""),
        label=ladder.label_of(d.get("method"), d.get("status_code"), d.get("reason")),
    )


def load_call(c: Context, call_id: str) -> queries.CallData | None:
    return queries.load_call(c.es, c.prefix, call_id, limit=c.settings.web.max_results)


def call_view(c: Context, data: queries.CallData) -> CallView:
    from indexers.web import explain

    corr = c.settings.correlation
    msgs = [_msg(d) for d in data.messages]
    lad = ladder.layout(msgs, corr.dedup_window_s, corr.dedup_same_node_window_s)
    by_id = {a.msg_id: a for a in lad.arrows}
    out = []
    for n, (d, m) in enumerate(zip(data.messages, msgs, strict=True), 1):
        arrow = by_id.get(m.id)
        out.append({"doc": d, "n": n, "kind": arrow.kind if arrow else "new", "label": m.label, "src": m.src,
                    "dst": m.dst, "color": arrow.color if arrow else ladder.COLORS[0],
                    "status": c.explanations.response(d.get("status_code")) if d.get("status_code") else None,
                    "lines": explain.annotate(d.get("raw", ""), c.explanations)})
    return CallView(data, lad, out)


def call_pcap(data: queries.CallData) -> bytes:
    return write_pcap(Packet(iso_to_us(d["ts"]), d["src_ip"], int(d["src_port"]), d["dst_ip"], int(d["dst_port"]),
                             d.get("transport", "udp"), (d.get("raw") or "").encode("utf-8", "surrogatepass"))
                      for d in data.messages)


def call_as_text(data: queries.CallData) -> str:
    return call_text(data.call_id, data.summaries, data.messages)


def export_name(call_id: str, ext: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in call_id)[:80] or "call"
    return f"call-{safe}.{ext}"


# ---------------------------------------------------------------------------------------------- alerts, KPIs

def alerts(c: Context, last: str | None, start: str | None, end: str | None) -> tuple[TimeRange, list, list]:
    rng, _ = forms.resolve_range(last, start, end, retention_days=c.settings.elasticsearch.retention_days, default="1d")
    events = queries.alert_events(c.es, c.prefix, rng, limit=c.settings.web.max_results)
    open_, resolved = queries.open_and_recent(events)
    return rng, open_, resolved


SCOPES = {"trunk": "per trunk", "all": "whole network", "src": "per source IP", "dst": "per destination IP"}
CHARTS = (("asr", "ASR", "%", True), ("ner", "NER", "%", True), ("pdd", "Post-dial delay (median)", "ms", False),
          ("cps", "Call attempts per second", "CPS", False), ("concurrent", "Concurrent calls (peak)", "calls", False))


def kpis(c: Context, last: str | None, start: str | None, end: str | None, scope: str,
         keys: list[str] | None) -> tuple[TimeRange, queries.KpiData, list[charts.Chart]]:
    from indexers.errors import QueryError

    if scope not in SCOPES:
        raise QueryError(f"unknown scope {scope[:20]!r}: one of {', '.join(SCOPES)}")
    rng, _ = forms.resolve_range(last, start, end, retention_days=c.settings.elasticsearch.retention_days, default="6h")
    data = queries.kpi_series(c.es, c.prefix, rng, scope, keys)
    t0, t1 = rng.start.timestamp(), rng.end.timestamp()
    made = [charts.chart(title, unit, [(s.key, s.points[m]) for s in data.series], t0, t1, percent)
            for m, title, unit, percent in CHARTS]
    return rng, data, made
