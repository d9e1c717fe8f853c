"""Retention without ILM: delete the daily ``sip-*`` indices whose day is over ``retention_days`` old.

The rule, shared with the ILM policy (``delete.min_age = <retention_days>d`` from the day parsed out of
the index name): the index of day D is deleted once ``D 00:00 UTC + retention_days`` has passed. With 5
days, on 2026-11-26 the indices of 2026-11-21 and older are deleted and 2026-11-22 onwards are kept, so
nothing older than 5 days is ever searchable.

Only names of the exact form ``<prefix><family base>-YYYY.MM.DD`` are considered; anything else (another
prefix, a hand-made index) is left alone. Used by ``sipscope retention enforce`` and on a schedule inside
``sipscope index``; several indexers sweeping at once is harmless (a missing index is not an error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from elasticsearch import Elasticsearch

from indexers.families import FAMILIES


def expired(day: date, now: datetime, retention_days: int) -> bool:
    """True when the daily index of ``day`` is past retention at ``now`` (aware datetime)."""
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(days=retention_days) <= now


def cutoff(now: datetime, retention_days: int) -> datetime:
    """Oldest event time still kept: searches never go further back."""
    return now - timedelta(days=retention_days)


@dataclass(frozen=True)
class DailyIndex:
    name: str
    family: str
    day: date


def parse_daily(name: str, prefix: str) -> DailyIndex | None:
    """The family and day of a daily index name, or None when the name is not one of ours."""
    if not name.startswith(prefix):
        return None
    m = _DAILY.fullmatch(name[len(prefix):])
    if not m:
        return None
    try:
        day = date(int(m["y"]), int(m["m"]), int(m["d"]))
    except ValueError:
        return None
    return DailyIndex(name, _BASES[m["base"]], day)


_BASES = {f.base: f.name for f in FAMILIES.values()}
_DAILY = re.compile(r"(?P<base>" + "|".join(map(re.escape, _BASES)) + r")-(?P<y>\d{4})\.(?P<m>\d{2})\.(?P<d>\d{2})")


def daily_indices(es: Elasticsearch, prefix: str) -> list[DailyIndex]:
    """Every daily index of every family under ``prefix`` (open or closed)."""
    rows = es.cat.indices(index=f"{prefix}sip-*", h="index", format="json", expand_wildcards="open,closed")
    found = (parse_daily(r["index"], prefix) for r in rows)
    return sorted((d for d in found if d), key=lambda d: (d.day, d.name))


def enforce(es: Elasticsearch, prefix: str, retention_days: int, now: datetime | None = None,
            dry_run: bool = False) -> list[str]:
    """Delete the expired daily indices; returns their names (those that would go, with ``dry_run``)."""
    now = now or datetime.now(UTC)
    doomed = [d.name for d in daily_indices(es, prefix) if expired(d.day, now, retention_days)]
    if not dry_run:
        for i in range(0, len(doomed), 50):
            es.options(ignore_status=404).indices.delete(index=",".join(doomed[i:i + 50]),
                                                         expand_wildcards="none", allow_no_indices=True,
                                                         ignore_unavailable=True)
    return doomed
