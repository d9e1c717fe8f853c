"""Validation of the inputs the pages and the API share: time ranges and paging cursors.

Numbers are validated by :func:`indexers.search.parse_number` (through :class:`~indexers.search.Searcher`).
Every refusal is an :class:`~indexers.errors.QueryError` with a one-line message for the page.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from indexers.errors import InvalidTimeRange, QueryError
from indexers.search import LAST, TimeRange, time_range

PRESETS = {"30m": "Last 30 mins", "1h": "Last hour", "3h": "Last 3 hours", "6h": "Last 6 hours"}
"""The range presets of the pages (the API accepts every key of ``indexers.search.LAST``)."""
WIDE_PRESETS = {**PRESETS, "1d": "Last day", "5d": "Last 5 days"}
MAX_CURSOR = 512


class BadCursor(QueryError):
    """A paging cursor that this app did not write."""


def _parse(text: str, what: str) -> datetime:
    t = text.strip()
    try:
        d = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
    except ValueError:
        raise InvalidTimeRange(f"{what} {text[:40]!r} is not a date and time (e.g. 2026-11-26T14:30)") from None
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def resolve_range(last: str | None, start: str | None, end: str | None, *, retention_days: int,
                  default: str = "1h", now: datetime | None = None) -> tuple[TimeRange, str | None]:
    """(searched range, note for the page or None). A custom range (``start``/``end``, UTC) may span at
    most ``retention_days``; a start before what is kept is moved to the oldest data kept (with a note)."""
    now = now or datetime.now(UTC)
    start, end = (start or "").strip() or None, (end or "").strip() or None
    if last == "custom" or start or end:
        t0 = _parse(start, "From") if start else now - timedelta(hours=1)
        t1 = _parse(end, "To") if end else now
        if t1 <= t0:
            raise InvalidTimeRange("the end of the range must be after its start")
        if t1 - t0 > timedelta(days=retention_days):
            raise InvalidTimeRange(f"the range spans {_span(t1 - t0)}: at most {retention_days} days can be "
                                   f"searched (that is all the data kept)")
        rng = time_range(None, _iso(t0), _iso(t1), now=now, retention_days=retention_days)
        note = None
        if rng.start > t0 + timedelta(seconds=1):
            note = f"data older than {rng.start:%Y-%m-%d %H:%M} UTC is not kept: searched from there"
        return rng, note
    key = last or default
    if key not in LAST:
        raise InvalidTimeRange(f"unknown range {key[:20]!r}: one of {', '.join(LAST)}")
    return time_range(key, now=now, retention_days=retention_days), None


def _span(d: timedelta) -> str:
    return f"{d.days} days {d.seconds // 3600} h" if d.days else f"{d.seconds // 3600} h"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def encode_cursor(after: list | None) -> str | None:
    if not after:
        return None
    return base64.urlsafe_b64encode(json.dumps(after, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(token: str | None) -> list | None:
    """A cursor from :func:`encode_cursor` -> the ``search_after`` values; :class:`BadCursor` otherwise."""
    if not token:
        return None
    if len(token) > MAX_CURSOR:
        raise BadCursor("paging cursor too long")
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        raise BadCursor("paging cursor is not valid: start the search again") from None
    if not isinstance(value, list) or not 1 <= len(value) <= 4 or not all(
            isinstance(v, int | float | str) and not isinstance(v, bool) for v in value):
        raise BadCursor("paging cursor is not valid: start the search again")
    return value
