"""Kafka record -> Elasticsearch bulk action, and the rejections of records that cannot become one.

Pure functions: bytes in, an action or a :class:`~sipscope.records.Rejected` out. No I/O.

The document is the record as its JSON fields (``records.to_dict``), with two changes, both covered by
the templates under ``infra/elasticsearch/templates/``:

* every time field (epoch seconds, float) becomes an ISO-8601 UTC string with microseconds
  (``2011-08-01T06:37:30.454022Z``); the messages index maps ``ts`` as ``date_nanos`` so messages of a
  call keep their microsecond order, the other families map times as ``date`` (milliseconds);
* every E.164 number field ``x_e164`` gets a sibling ``x_e164_rev`` with the digits reversed, so a search
  by the last digits of a number is a prefix query on ``x_e164_rev`` (no leading wildcard).

Document ``_id`` = the record's stable ``id`` (a hash of the observation), written with op type ``index``:
a replay, a redelivery after a crash, or a retried bulk request overwrites the same document instead of
adding one. A record without an id gets a hash of its bytes, which is stable too.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from typing import Any

import msgspec

from indexers.families import Family
from sipscope import records
from sipscope.records import Rejected

STAGE = "indexer"
_DAY = 86400
_day_names: dict[int, str] = {}


class BadRecord(Exception):
    """A record that cannot become a document; ``reason`` is the stable snake_case name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


_second_names: dict[int, str] = {}


def iso(ts: float) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC), exactly as
    ``datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")`` writes it (microseconds rounded
    half-even, as CPython does), with the text of each whole second made once: a call summary has ten time
    fields, and this was the indexer's largest single cost."""
    frac, whole = math.modf(ts)  # CPython's own steps (_PyTime_DoubleToDenominator)
    sec, us = int(whole), round(frac * 1e6)
    if us >= 1_000_000:
        sec += 1
        us -= 1_000_000
    elif us < 0:
        sec -= 1
        us += 1_000_000
    head = _second_names.get(sec)
    if head is None:
        if len(_second_names) >= 100_000:
            _second_names.clear()
        head = _second_names[sec] = datetime.fromtimestamp(sec, UTC).isoformat()[:-6]
    return f"{head}.{us:06d}Z"


def day_of(ts: float) -> str:
    """UTC day of epoch seconds as ``YYYY.MM.DD`` (the suffix of daily indices)."""
    key = int(ts // _DAY)
    name = _day_names.get(key)
    if name is None:
        name = _day_names[key] = datetime.fromtimestamp(key * _DAY, UTC).strftime("%Y.%m.%d")
    return name


def decode(value: bytes | None, family: Family) -> Any:
    """Kafka value -> record of the family; raises :class:`BadRecord` (``bad_record`` or
    ``unsupported_schema_version``)."""
    if not value:
        raise BadRecord("bad_record", "empty Kafka value")
    try:
        return records.decode(value, family.record)
    except msgspec.ValidationError as exc:
        reason = "unsupported_schema_version" if "`$.v`" in str(exc) else "bad_record"
        raise BadRecord(reason, f"not a {family.record.__name__}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRecord("bad_record", f"not JSON: {exc}") from None


def to_document(rec: Any, family: Family) -> tuple[str, dict[str, Any]]:
    """Record -> (day ``YYYY.MM.DD`` of its event time, document). Raises :class:`BadRecord`
    (``bad_timestamp``) for a time that is not a real date."""
    doc = msgspec.to_builtins(rec)
    try:
        for f in family.time_fields:
            t = doc.get(f)
            if t is not None:
                doc[f] = iso(t)
        day = day_of(getattr(rec, family.time_field))
    except (ValueError, OverflowError, OSError) as exc:
        raise BadRecord("bad_timestamp", f"time field out of range: {exc}") from None
    for _, e164 in family.numbers:
        digits = doc.get(e164)
        if digits:
            doc[e164 + "_rev"] = digits[::-1]
    return day, doc


def check_time(rec: Any, family: Family, now: float, max_future_s: float) -> None:
    """Raise :class:`BadRecord` (``ts_in_future``) for an event time more than ``max_future_s`` ahead of
    ``now``: its daily index would outlive the retention period by years. ``max_future_s`` 0 = no limit."""
    t = getattr(rec, family.time_field)
    if max_future_s and t > now + max_future_s:
        raise BadRecord("ts_in_future", f"{family.time_field} {iso(t) if t < 1e11 else t} is more than "
                                        f"{max_future_s / 86400:g} day(s) ahead of the indexer's clock")


def doc_id(rec: Any, value: bytes) -> str:
    return getattr(rec, "id", "") or records.stable_id(value)


def action(rec: Any, value: bytes, family: Family, prefix: str) -> dict[str, Any]:
    """The bulk action (op type ``index``, ``_id`` = record id) of one decoded record, as a dict for
    ``elasticsearch.helpers``."""
    day, doc = to_document(rec, family)
    return {"_op_type": "index", "_index": family.index(prefix, day), "_id": doc_id(rec, value), "_source": doc}


_json = msgspec.json.Encoder()


def bulk_lines(rec: Any, value: bytes, family: Family, prefix: str) -> bytes:
    """The same action as the two NDJSON lines of a ``_bulk`` body (action, then source), encoded once by
    msgspec: what the indexer sends, without the client's per-document ``json.dumps``."""
    day, doc = to_document(rec, family)
    head = {"index": {"_index": family.index(prefix, day), "_id": doc_id(rec, value)}}
    return b"%s\n%s\n" % (_json.encode(head), _json.encode(doc))


def rejected(value: bytes | None, reason: str, detail: str, rec: Any = None, family: Family | None = None,
             node: str = "") -> Rejected:
    """The ``sip.rejected`` record of an input the indexer could not store (raw bytes kept, base64)."""
    ts = None
    if rec is not None and family is not None:
        t = getattr(rec, family.time_field, None)
        ts = t if isinstance(t, float | int) else None
    return Rejected(
        stage=STAGE, reason=reason, detail=detail[:2000], ts=ts,
        src_ip=getattr(rec, "src_ip", None), src_port=getattr(rec, "src_port", None),
        dst_ip=getattr(rec, "dst_ip", None), dst_port=getattr(rec, "dst_port", None),
        node=getattr(rec, "node", "") or node, raw_b64=base64.b64encode(value or b"").decode(),
    )
