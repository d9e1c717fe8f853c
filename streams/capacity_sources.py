"""Where ``sipscope capacity`` gets its calls: a capture (offline correlation) or the indexed ``sip-calls``.

Both give :class:`~streams.capacity.CallTimes`. A trunk map (CIDR -> name, the format of
``correlation.trunks``) given here names the trunks from the calls' addresses, replacing the names the
worker stored; without one, the stored names (pcap: ``correlation.trunks`` of the settings) are used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sipscope.settings import Settings
from streams.capacity import CallTimes
from streams.trunks import TrunkMap

ES_FIELDS = ("start_ts", "invite_ts", "end_ts", "answer_ts", "bye_ts", "final_ts", "duration_s", "src_ip",
             "dst_ip", "src_trunk", "dst_trunk")
"""``_source`` fields read from ``sip-calls-*`` (the rest of a call document is not needed)."""


def load_trunk_map(text: str | None, pairs: list[str] | None = None) -> dict[str, str]:
    """A JSON file path or inline JSON object (``{"203.0.113.0/24": "carrier-a"}``), plus ``CIDR=NAME`` pairs."""
    mapping: dict[str, str] = {}
    if text:
        raw = text.strip()
        data = json.loads(raw if raw[:1] in "{[" else Path(raw).read_text())
        if not isinstance(data, dict):
            raise ValueError("the trunk map must be a JSON object of CIDR -> name")
        mapping.update({str(k): str(v) for k, v in data.items()})
    for pair in pairs or ():
        cidr, sep, name = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"bad trunk {pair!r}: want CIDR=NAME")
        mapping[cidr.strip()] = name.strip()
    TrunkMap(mapping)  # validates the CIDRs
    return mapping


def renamed(calls: Iterator[CallTimes] | list[CallTimes], mapping: Mapping[str, str] | None) -> Iterator[CallTimes]:
    """The calls with trunk names taken from ``mapping`` (unchanged when it is empty)."""
    if not mapping:
        yield from calls
        return
    tm = TrunkMap(mapping)
    for c in calls:
        yield CallTimes(c.start, c.end, c.answer, c.bye, c.final, c.duration, c.src_ip, c.dst_ip,
                        tm.lookup(c.src_ip), tm.lookup(c.dst_ip))


def calls_from_pcap(path: str, settings: Settings, keylog: str | None = None) -> list[CallTimes]:
    """Final call summaries of a capture (``streams.analyze``, correlation only: no KPI/anomaly engines)."""
    from streams.analyze import analyze_file

    report = analyze_file(path, settings, keylog=keylog, extra_engines=[])
    return [CallTimes.of(c) for c in report.calls]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _epoch(value: Any) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    return datetime.fromisoformat(value).timestamp()


def call_from_doc(doc: Mapping[str, Any]) -> CallTimes:
    """One ``sip-calls`` document (times as ISO-8601 strings or epoch seconds) -> :class:`CallTimes`."""
    start = _epoch(doc.get("invite_ts")) or _epoch(doc["start_ts"])
    end = _epoch(doc.get("end_ts")) or start
    return CallTimes(start, end, _epoch(doc.get("answer_ts")), _epoch(doc.get("bye_ts")), _epoch(doc.get("final_ts")),
                     doc.get("duration_s"), doc.get("src_ip"), doc.get("dst_ip"), doc.get("src_trunk"),
                     doc.get("dst_trunk"))


def calls_query(start_iso: str, end_iso: str) -> dict[str, Any]:
    """Calls whose first INVITE is in the range (interim and final versions share one id, so one each)."""
    return {"bool": {"filter": [{"range": {"start_ts": {"gte": start_iso, "lte": end_iso}}}]}}


def calls_from_es(es, settings: Settings, *, last: str | None = None, start: str | None = None,
                  end: str | None = None, page: int = 5000) -> Iterator[CallTimes]:
    """Every indexed call of the time range (``--last 1d`` or ``--from/--to``), read with a scroll over
    the daily ``sip-calls`` indices of the days in range (missing days are skipped)."""
    from elasticsearch.helpers import scan

    from indexers.families import CALLS
    from indexers.search import indices_for, time_range

    rng = time_range(last, start, end, retention_days=settings.elasticsearch.retention_days)
    names = indices_for(CALLS, settings.elasticsearch.index_prefix, rng)
    hits = scan(es, index=",".join(names), query={"query": calls_query(_iso(rng.start), _iso(rng.end))},
                _source=list(ES_FIELDS), size=page, ignore_unavailable=True, allow_no_indices=True,
                expand_wildcards="open", scroll="2m")
    for hit in hits:
        yield call_from_doc(hit["_source"])
