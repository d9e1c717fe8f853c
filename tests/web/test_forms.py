"""Time ranges of the pages (presets, custom at most the 5 days kept) and paging cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from indexers.errors import InvalidTimeRange
from indexers.web import forms

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def rng(last=None, start=None, end=None):
    return forms.resolve_range(last, start, end, retention_days=5, now=NOW)


def test_presets_end_now():
    r, note = rng("30m")
    assert (r.start, r.end, note) == (NOW - timedelta(minutes=30), NOW, None)
    assert rng(None)[0].start == NOW - timedelta(hours=1)  # default: last hour


def test_custom_range_in_utc_from_the_browser_form():
    r, note = rng("custom", "2026-11-25T08:00", "2026-11-25T09:30:15")
    assert (r.start, r.end, note) == (datetime(2026, 11, 25, 8, 0, tzinfo=UTC), datetime(2026, 11, 25, 9, 30, 15, tzinfo=UTC), None)


@pytest.mark.parametrize("args,message", [
    (("custom", "2026-11-10T00:00", "2026-11-26T00:00"), "at most 5 days"),
    (("custom", "2026-11-25T10:00", "2026-11-25T09:00"), "after its start"),
    (("custom", "yesterday", None), "is not a date"),
    (("custom", "2026-10-01T00:00", "2026-10-02T00:00"), "retention"),
    (("7d", None, None), "unknown range"),
])
def test_bad_ranges_are_refused_with_a_reason(args, message):
    with pytest.raises(InvalidTimeRange, match=message):
        rng(*args)


def test_a_start_before_the_data_kept_is_moved_with_a_note():
    r, note = rng("custom", "2026-11-21T00:00", "2026-11-25T00:00")
    assert r.start == datetime(2026, 11, 21, 12, 0, tzinfo=UTC) and "not kept" in note


def test_cursor_round_trip_and_tampering():
    after = [1795704720123456789, "3f1a"]
    token = forms.encode_cursor(after)
    assert forms.decode_cursor(token) == after and forms.encode_cursor(None) is None
    for bad in ("!!!", forms.encode_cursor([{"script": 1}]), forms.encode_cursor([True]), "x" * 600,
                forms.encode_cursor(list(range(9)))):
        with pytest.raises(forms.BadCursor):
            forms.decode_cursor(bad)
