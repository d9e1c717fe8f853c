"""The Elasticsearch reads of the web app that :mod:`indexers.search` does not offer.

* :func:`load_call` - every message of one call, with its correlated legs (other Call-IDs sharing a
  ``correlation_id``, from the call summaries and from the messages), and the legs' summaries;
* :func:`alert_events` / :func:`open_and_recent` - anomaly alerts of a time range, latest state per alert;
* :func:`kpi_series` - per-key KPI time series (date histogram of the per-minute ``sip.stats`` rows).

Only ``term``/``terms``/``range`` queries and aggregations are built; user text is only ever a literal
value. Every search names the family's index pattern with the deployment's prefix and ignores missing
indices (a day without data has no index). Errors are :class:`SearchUnavailable` (Elasticsearch down or
failing) for the caller to show as a message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import msgspec
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from indexers.families import ALERTS, CALLS, MESSAGES, STATS, Family
from indexers.search import TimeRange

MAX_LEGS = 20
"""Most legs (Call-IDs) drawn together in one ladder."""
_WHERE = {"ignore_unavailable": True, "allow_no_indices": True, "expand_wildcards": "open"}


class SearchUnavailable(Exception):
    """Elasticsearch is unreachable, timed out, or failed the request; ``str()`` is a one-line reason."""


@cache
def _defaults(family: Family) -> dict[str, Any]:
    """Field defaults of the family's record (documents omit fields at their default value)."""
    out: dict[str, Any] = {}
    for f in msgspec.structs.fields(family.record):
        if f.default is not msgspec.NODEFAULT:
            out[f.name] = f.default
        elif f.default_factory is not msgspec.NODEFAULT:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None
    return out


def complete(doc: dict[str, Any], family: Family) -> dict[str, Any]:
    """The document with every field of its record present (defaults filled in)."""
    return {**_defaults(family), **doc}


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _search(es: Elasticsearch, family: Family, prefix: str, **body: Any) -> dict[str, Any]:
    try:
        return es.search(index=family.pattern(prefix), **_WHERE, **body)
    except ApiError as exc:
        raise SearchUnavailable(f"Elasticsearch refused the search ({exc.status_code})") from exc
    except TransportError as exc:
        raise SearchUnavailable("Elasticsearch is not answering") from exc


def guard(fn, *args: Any, **kw: Any) -> Any:
    """Run an :mod:`indexers.search` call, turning Elasticsearch failures into :class:`SearchUnavailable`."""
    try:
        return fn(*args, **kw)
    except ApiError as exc:
        raise SearchUnavailable(f"Elasticsearch refused the search ({exc.status_code})") from exc
    except TransportError as exc:
        raise SearchUnavailable("Elasticsearch is not answering") from exc


# ---------------------------------------------------------------------------------------------- one call

@dataclass
class CallData:
    call_id: str
    legs: list[str]
    """Call-IDs drawn, the asked one first, then the correlated ones in order of appearance."""
    summaries: list[dict[str, Any]]
    """Call summary documents of the legs (those indexed so far), the asked one first."""
    messages: list[dict[str, Any]]
    """Message documents (``raw`` included), oldest first."""
    total: int
    """Messages of the legs in the index (``messages`` holds at most the limit)."""
    correlation_ids: list[str] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.total > len(self.messages)


def _summaries(es: Elasticsearch, prefix: str, query: dict, size: int = MAX_LEGS) -> list[dict]:
    resp = _search(es, CALLS, prefix, query=query, size=size, sort=[{"start_ts": "asc"}])
    best: dict[str, dict] = {}
    for h in resp["hits"]["hits"]:  # an interim and a final summary can coexist briefly: keep the final
        d = complete(h["_source"], CALLS)
        if d["call_id"] not in best or d.get("final", True):
            best[d["call_id"]] = d
    return list(best.values())


def _correlated(es: Elasticsearch, prefix: str, ids: list[str]) -> tuple[list[dict], list[str]]:
    """Summaries and Call-IDs linked to the correlation ids ``ids``."""
    sums = _summaries(es, prefix, {"bool": {"should": [{"terms": {"correlation_id": ids}},
                                                       {"terms": {"call_id": ids}}], "minimum_should_match": 1}})
    resp = _search(es, MESSAGES, prefix, query={"terms": {"correlation_id": ids}}, size=0,
                   aggs={"legs": {"terms": {"field": "call_id", "size": MAX_LEGS}}})
    return sums, [b["key"] for b in resp["aggregations"]["legs"]["buckets"]]


def load_call(es: Elasticsearch, prefix: str, call_id: str, limit: int = 1000) -> CallData | None:
    """The call with Call-ID ``call_id`` and its correlated legs; None when nothing of it is indexed."""
    own = _summaries(es, prefix, {"term": {"call_id": call_id}})
    first = _search(es, MESSAGES, prefix, query={"term": {"call_id": call_id}}, size=50,
                    source_includes=["correlation_id"], sort=[{"ts": "asc"}])
    if not own and not first["hits"]["hits"]:
        return None
    ids = {d.get("correlation_id") for d in own} | {h["_source"].get("correlation_id") for h in first["hits"]["hits"]}
    ids.discard(None)
    ids.discard("")
    corr = sorted(ids)
    legs, summaries = [call_id], list(own)
    if corr:
        sums, msg_legs = _correlated(es, prefix, corr)
        for d in sums:
            if d["call_id"] != call_id:
                summaries.append(d)
        for cid in [d["call_id"] for d in sorted(sums, key=lambda d: d.get("start_ts", ""))] + msg_legs:
            if cid not in legs and len(legs) < MAX_LEGS:
                legs.append(cid)
    resp = _search(es, MESSAGES, prefix, query={"terms": {"call_id": legs}}, size=limit,
                   sort=[{"ts": "asc"}], track_total_hits=True)
    msgs = [complete(h["_source"], MESSAGES) for h in resp["hits"]["hits"]]
    seen = {m["call_id"] for m in msgs}
    legs = [cid for cid in legs if cid in seen or any(s["call_id"] == cid for s in summaries)]
    return CallData(call_id=call_id, legs=legs, summaries=[s for s in summaries if s["call_id"] in legs],
                    messages=msgs, total=resp["hits"]["total"]["value"], correlation_ids=corr)


# ---------------------------------------------------------------------------------------------- alerts

def alert_events(es: Elasticsearch, prefix: str, rng: TimeRange, limit: int = 500) -> list[dict[str, Any]]:
    """Alert events (open and resolved) in the range, newest first."""
    resp = _search(es, ALERTS, prefix, size=limit, sort=[{"ts": "desc"}, {"id": "asc"}],
                   query={"range": {"ts": {"gte": _iso(rng.start), "lte": _iso(rng.end)}}})
    return [complete(h["_source"], ALERTS) for h in resp["hits"]["hits"]]


def open_and_recent(events: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """(open alerts, resolved alerts) from events newest first: the latest event of each ``alert_id``;
    a resolved alert carries ``opened`` (the time of its open event) when that is in the range too."""
    latest: dict[str, dict] = {}
    opened: dict[str, str] = {}
    for e in events:
        aid = e.get("alert_id") or e.get("id")
        latest.setdefault(aid, e)
        if e.get("status") == "open":
            opened[aid] = e.get("ts")
    open_, resolved = [], []
    for aid, e in latest.items():
        item = dict(e, opened=opened.get(aid))
        (open_ if e.get("status") == "open" else resolved).append(item)
    rank = {"critical": 0, "warning": 1, "info": 2}
    open_.sort(key=lambda a: a.get("ts", ""), reverse=True)
    open_.sort(key=lambda a: rank.get(a.get("severity"), 3))  # stable: most severe first, newest first within
    return open_, resolved


# ---------------------------------------------------------------------------------------------- KPIs

METRICS = ("asr", "ner", "pdd", "cps", "concurrent")


@dataclass
class Series:
    key: str
    points: dict[str, list[tuple[float, float | None]]]
    """metric -> [(epoch seconds of the bucket start, value or None)]."""
    attempts: int = 0


@dataclass
class KpiData:
    scope: str
    interval_s: int
    series: list[Series]
    keys: list[str]
    """Every key of the scope in the range (most attempts first), for the key picker."""


def interval_for(rng: TimeRange, buckets: int = 120) -> int:
    """Bucket width in seconds: a whole number of minutes giving at most ``buckets`` points."""
    span = (rng.end - rng.start).total_seconds()
    minutes = max(1, math.ceil(span / 60 / buckets))
    for nice in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440):
        if nice >= minutes:
            return nice * 60
    return minutes * 60


def kpi_series(es: Elasticsearch, prefix: str, rng: TimeRange, scope: str = "trunk", keys: list[str] | None = None,
               max_keys: int = 6) -> KpiData:
    """Per key of ``scope``: ASR and NER (attempt-weighted means of the minutes, %), PDD (attempt-weighted
    mean of the per-minute medians, ms), CPS (attempts / bucket seconds) and concurrent calls (highest
    per-minute peak), one point per bucket."""
    interval = interval_for(rng)
    flt: list[dict] = [{"term": {"scope": scope}},
                       {"range": {"ts": {"gte": _iso(rng.start), "lte": _iso(rng.end)}}}]
    wavg = lambda f: {"weighted_avg": {"value": {"field": f}, "weight": {"field": "attempts", "missing": 0}}}
    per_bucket = {"attempts": {"sum": {"field": "attempts"}}, "asr": wavg("asr"), "ner": wavg("ner"),
                  "pdd": wavg("pdd_p50_ms"), "concurrent": {"max": {"field": "concurrent_max"}}}
    aggs = {"all_keys": {"terms": {"field": "key", "size": 200, "order": {"n": "desc"}},
                         "aggs": {"n": {"sum": {"field": "attempts"}}}}}
    query: dict[str, Any] = {"bool": {"filter": flt}}
    resp = _search(es, STATS, prefix, size=0, query=query, aggs=aggs)
    all_keys = [b["key"] for b in resp["aggregations"]["all_keys"]["buckets"]]
    chosen = [k for k in (keys or []) if k in all_keys] or all_keys[:max_keys]
    if not chosen:
        return KpiData(scope, interval, [], all_keys)
    query = {"bool": {"filter": [*flt, {"terms": {"key": chosen}}]}}
    hist = {"date_histogram": {"field": "ts", "fixed_interval": f"{interval}s", "min_doc_count": 0,
                               "extended_bounds": {"min": _iso(rng.start), "max": _iso(rng.end)}},
            "aggs": per_bucket}
    resp = _search(es, STATS, prefix, size=0, query=query, aggs={"keys": {
        "terms": {"field": "key", "size": len(chosen)}, "aggs": {"n": {"sum": {"field": "attempts"}}, "t": hist}}})
    series = []
    for kb in resp["aggregations"]["keys"]["buckets"]:
        pts: dict[str, list] = {m: [] for m in METRICS}
        for b in kb["t"]["buckets"]:
            t = b["key"] / 1000.0
            n = b["attempts"]["value"] or 0
            pts["asr"].append((t, b["asr"]["value"]))
            pts["ner"].append((t, b["ner"]["value"]))
            pts["pdd"].append((t, b["pdd"]["value"]))
            pts["cps"].append((t, n / interval if b["doc_count"] else None))
            pts["concurrent"].append((t, b["concurrent"]["value"]))
        series.append(Series(kb["key"], pts, int(kb["n"]["value"] or 0)))
    series.sort(key=lambda s: chosen.index(s.key))
    return KpiData(scope, interval, series, all_keys)
