"""Search by phone number: the API behind ``sipscope trace`` (and the web UI later).

A number matches a message when it is found in From, To, Request-URI, P-Asserted-Identity or Diversion
(calls: caller, callee, Request-URI, PAI, Diversion), in any of these forms:

* as dialled (raw user part, exact): the typed text, its digits, ``+E.164``, ``00E.164`` and the national
  form (trunk prefix + national number) of the configured numbering plan;
* as E.164 (the ``*_e164`` fields filled by the capture with the same plan);
* as a trailing part: any query of at least 6 digits typed without ``+`` (``417084``, ``913417084``,
  ``0913417084``) also matches every E.164 number ending with exactly those digits - a ``prefix`` query on
  the reversed-digit fields (``*_e164_rev``), so no leading wildcard ever runs. A tail that starts with
  ``0`` (``0123456``) is searched as typed too, so it is found although it looks like a national number;
  a whole national number practically never is the tail of another E.164 number (that would need a
  country code ending in 0 and the same national number there).

Only ``term``/``terms``/``prefix`` queries are built, with the user's text as a literal value: no
``query_string``, no wildcard syntax. ``*`` and ``?`` are refused with :class:`InvalidNumber` (they
would otherwise look like they work); letters are searched literally (SIP users like ``alice``). A
``sip:``/``tel:`` URI is reduced to its user part.

Time: ``last`` (30m, 1h, 3h, 6h, 1d, 5d; default 1d) or ``start``/``end`` (ISO-8601, UTC when no
offset), clamped to the retention period (nothing older than ``retention_days`` exists) and to one day
ahead of now. Only the daily indices of the days in range are searched. Results are newest first;
``after`` (the ``next_after`` of the previous page) gives the next page. Messages of REGISTER
transactions are left out unless ``registrations=True``. With ``whole_calls`` (what ``sipscope trace``
shows by default) the result is every message of the matching calls (Call-IDs), not only the messages
that carry the number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from indexers.errors import InvalidNumber, InvalidTimeRange
from indexers.families import FAMILIES, Family
from indexers.retention import cutoff
from sipscope.numbers import NumberPlan, normalise, search_forms
from sipscope.settings import Settings

LAST = {"30m": timedelta(minutes=30), "1h": timedelta(hours=1), "3h": timedelta(hours=3),
        "6h": timedelta(hours=6), "1d": timedelta(days=1), "5d": timedelta(days=5)}
DEFAULT_LAST = "1d"
MIN_SUFFIX = 6
MAX_CALLS = 1000
"""Most calls listed by one whole-call search (the most recent ones)."""
MAX_LENGTH = 64
FUTURE_SLACK = timedelta(days=1)
"""How far ahead of now a range may reach (capture clocks a little ahead of ours)."""

_SEPARATORS = re.compile(r"[ \-.()/\t]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"^(?:sips?|tel):", re.IGNORECASE)


@dataclass(frozen=True)
class NumberQuery:
    """What one typed number is searched as."""

    typed: str
    e164: str | None
    """E.164 digits (no ``+``), None when the query is not a phone number (``alice``)."""
    raw_forms: tuple[str, ...]
    """Exact values searched in the raw user fields."""
    suffix: str | None
    """Trailing digits (as typed) searched with a prefix query on the reversed E.164 fields, or None."""

    def describe(self) -> str:
        parts = [f"as dialled: {', '.join(self.raw_forms)}"]
        if self.e164:
            parts.append(f"E.164 +{self.e164}")
        if self.suffix:
            parts.append(f"any number ending in {self.suffix}")
        elif self.e164 and self.e164.isdigit() and len(_SEPARATORS.sub("", self.typed)) < MIN_SUFFIX:
            parts.append(f"(a search by trailing digits needs at least {MIN_SUFFIX})")
        return "; ".join(parts)


def parse_number(query: str, plan: NumberPlan, min_suffix: int = MIN_SUFFIX) -> NumberQuery:
    """Validate a typed number and list its forms; raises :class:`InvalidNumber`."""
    q = (query or "").strip()
    if not q:
        raise InvalidNumber("empty number: type a phone number, a SIP user, or at least the last 6 digits")
    if len(q) > MAX_LENGTH:
        raise InvalidNumber(f"number too long ({len(q)} characters, at most {MAX_LENGTH})")
    if _CONTROL.search(q):
        raise InvalidNumber("number contains control characters")
    if "*" in q or "?" in q:
        raise InvalidNumber(f"wildcards are not supported in {q!r}: type the whole number (any form) "
                            f"or its last {min_suffix} digits or more")
    user = _SCHEME.sub("", q).split("@", 1)[0].strip()
    if not user:
        raise InvalidNumber(f"no user part in {q!r}")
    e164 = normalise(user, plan)
    forms = search_forms(user, plan)
    if e164 and len(e164) >= 7:  # a full number may have been dialled with + or 00 (not an extension)
        forms += ["+" + e164, plan.international_prefix + e164] if plan.international_prefix else ["+" + e164]
    compact = _SEPARATORS.sub("", user.partition(";")[0])
    suffix = compact if compact.isdigit() and compact.isascii() and len(compact) >= min_suffix else None
    return NumberQuery(typed=q, e164=e164, raw_forms=tuple(dict.fromkeys(forms)), suffix=suffix)


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def days(self) -> list[date]:
        d, out = self.start.date(), []
        while d <= self.end.date():
            out.append(d)
            d += timedelta(days=1)
        return out


def _parse_time(text: str, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidTimeRange(f"{what} {text!r} is not an ISO-8601 time (e.g. 2026-11-26T14:30:00Z)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def time_range(last: str | None = None, start: str | None = None, end: str | None = None, *,
               now: datetime | None = None, retention_days: int = 5) -> TimeRange:
    """The searched interval, clamped to what retention keeps. Raises :class:`InvalidTimeRange`."""
    now = now or datetime.now(UTC)
    if last and (start or end):
        raise InvalidTimeRange("use either --last or --from/--to, not both")
    if start or end:
        t0 = _parse_time(start, "--from") if start else cutoff(now, retention_days)
        t1 = _parse_time(end, "--to") if end else now
    else:
        key = last or DEFAULT_LAST
        if key not in LAST:
            raise InvalidTimeRange(f"--last {key!r}: one of {', '.join(LAST)}")
        t0, t1 = now - LAST[key], now
    if t1 <= t0:
        raise InvalidTimeRange("--to must be after --from")
    lo, hi = cutoff(now, retention_days), now + FUTURE_SLACK
    t0, t1 = max(t0, lo), min(t1, hi)
    if t1 <= t0:
        raise InvalidTimeRange(f"the range is outside the {retention_days}-day retention "
                               f"(data is kept from {lo:%Y-%m-%dT%H:%M}Z)")
    return TimeRange(t0, t1)


def number_clause(nq: NumberQuery, family: Family) -> dict[str, Any]:
    should: list[dict] = []
    for raw, e164 in family.numbers:
        should.append({"terms": {raw: list(nq.raw_forms)}})
        if nq.e164:
            should.append({"term": {e164: nq.e164}})
        if nq.suffix:
            should.append({"prefix": {f"{e164}_rev": nq.suffix[::-1]}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def build_query(nq: NumberQuery, family: Family, rng: TimeRange, registrations: bool = False) -> dict[str, Any]:
    filters = [number_clause(nq, family),
               {"range": {family.time_field: {"gte": _iso(rng.start), "lte": _iso(rng.end)}}}]
    query: dict[str, Any] = {"bool": {"filter": filters}}
    if family.name == "messages" and not registrations:
        query["bool"]["must_not"] = [{"term": {"cseq_method": "REGISTER"}}]
    return query


def sort_for(family: Family) -> list[dict]:
    return [{family.time_field: {"order": "desc"}}, {"id": {"order": "desc"}}]


def indices_for(family: Family, prefix: str, rng: TimeRange) -> list[str]:
    return [family.index(prefix, d.strftime("%Y.%m.%d")) for d in rng.days()]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Page:
    hits: list[dict]
    """The documents (``_source``), newest first."""
    total: int
    """Matches in the whole range (exact up to 10,000)."""
    next_after: list | None
    """Pass as ``after`` for the next page; None on the last page."""
    number: NumberQuery
    range: TimeRange
    indices: list[str] = field(default_factory=list)
    calls: list[str] | None = None
    """With ``whole_calls``: the Call-IDs whose messages are listed."""


class Searcher:
    """Number search over the daily indices of one deployment (prefix, plan and retention from settings)."""

    def __init__(self, es: Elasticsearch, settings: Settings) -> None:
        self.es = es
        self.prefix = settings.elasticsearch.index_prefix
        self.retention_days = settings.elasticsearch.retention_days
        self.plan = NumberPlan.from_settings(settings.numbering)

    def search(self, family: str, number: str, *, last: str | None = None, start: str | None = None,
               end: str | None = None, registrations: bool = False, whole_calls: bool = False, size: int = 100,
               after: list | None = None, with_raw: bool = True, now: datetime | None = None) -> Page:
        """One page of the documents of ``family`` matching ``number`` in the time range, newest first.

        ``whole_calls`` (messages only): every message of each matching Call-ID in the range, not only
        the messages carrying the number (responses and in-dialog requests often carry it only in
        From/To of the other direction, and a B2BUA leg may carry it only in the INVITE's PAI).
        """
        fam = FAMILIES[family]
        nq = parse_number(number, self.plan)
        rng = time_range(last, start, end, now=now, retention_days=self.retention_days)
        names = indices_for(fam, self.prefix, rng)
        where = {"index": ",".join(names), "ignore_unavailable": True, "allow_no_indices": True,
                 "expand_wildcards": "open"}
        query = build_query(nq, fam, rng, registrations)
        calls = None
        if whole_calls and family == "messages":
            calls = self._call_ids(query, where)
            if not calls:
                return Page([], 0, None, nq, rng, names, calls=[])
            query = {"bool": {**query["bool"], "filter": [{"terms": {"call_id": calls}}, query["bool"]["filter"][1]]}}
        kwargs: dict[str, Any] = {}
        if after:
            kwargs["search_after"] = after
        if not with_raw and family == "messages":
            kwargs["source_excludes"] = ["raw"]
        resp = self.es.search(query=query, sort=sort_for(fam), size=size, track_total_hits=10_000, **where, **kwargs)
        hits = resp["hits"]["hits"]
        nxt = hits[-1]["sort"] if hits and len(hits) == size else None
        return Page([h["_source"] for h in hits], resp["hits"]["total"]["value"], nxt, nq, rng, names, calls=calls)

    def _call_ids(self, query: dict, where: dict) -> list[str]:
        """Call-IDs of the matching messages, most recent calls first (at most MAX_CALLS)."""
        resp = self.es.search(query=query, size=0, **where, aggs={"calls": {
            "terms": {"field": "call_id", "size": MAX_CALLS, "order": {"last": "desc"}},
            "aggs": {"last": {"max": {"field": "ts"}}}}})
        aggs = resp.body.get("aggregations")  # absent when no daily index of the range exists yet
        return [b["key"] for b in aggs["calls"]["buckets"]] if aggs else []

    def messages(self, number: str, **kw: Any) -> Page:
        return self.search("messages", number, **kw)

    def calls(self, number: str, **kw: Any) -> Page:
        kw.pop("registrations", None)
        return self.search("calls", number, **kw)
