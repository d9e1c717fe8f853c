"""The number search query: forms, validation (no injection), time ranges (no Elasticsearch needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexers.errors import InvalidNumber, InvalidTimeRange
from indexers.families import FAMILIES
from indexers.search import build_query, indices_for, parse_number, time_range
from sipscope.numbers import NumberPlan

AU = NumberPlan(country_code="61", trunk_prefix="0", international_prefix="00")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MESSAGES = FAMILIES["messages"]
ALLOWED = {"bool", "should", "filter", "must_not", "minimum_should_match", "term", "terms", "prefix", "range",
           "gte", "lte"}


@pytest.mark.parametrize("typed", ["0289707501", "+61289707501", "+61 2 8970 7501", "0061289707501",
                                   "(02) 8970-7501", "sip:+61289707501@carrier.example;user=phone", "tel:+61-2-8970-7501"])
def test_every_form_of_a_full_number_searches_the_same_e164_and_raw_forms(typed):
    nq = parse_number(typed, AU)
    assert nq.e164 == "61289707501"
    assert {"61289707501", "+61289707501", "0289707501", "0061289707501"} <= set(nq.raw_forms)
    digits = "".join(c for c in typed.split("@")[0] if c.isdigit() or c == "+")
    assert nq.suffix == (None if digits.startswith("+") else digits)  # digits typed without + are also a tail


@pytest.mark.parametrize("typed,suffix", [("707501", "707501"), ("89707501", "89707501"), ("289707501", "289707501"),
                                          ("61289707501", "61289707501"), ("0707501", "0707501"), ("70750", None),
                                          ("1001", None), ("+707501", None)])
def test_trailing_digits_need_at_least_six(typed, suffix):
    assert parse_number(typed, AU).suffix == suffix


def test_suffix_is_a_prefix_query_on_reversed_digits():
    q = build_query(parse_number("707501", AU), MESSAGES, time_range("1h", now=NOW))
    prefixes = [c["prefix"] for c in q["bool"]["filter"][0]["bool"]["should"] if "prefix" in c]
    assert {"from_user_e164_rev": "105707"} in prefixes and len(prefixes) == len(MESSAGES.numbers)


def test_all_five_number_fields_are_searched():
    should = build_query(parse_number("0289707501", AU), MESSAGES, time_range("1h", now=NOW))["bool"]["filter"][0]["bool"]["should"]
    fields = {next(iter(next(iter(c.values())))) for c in should}
    for raw, e164 in MESSAGES.numbers:
        assert raw in fields and e164 in fields


@pytest.mark.parametrize("bad", ["", "   ", "0289*", "?289707501", "*", "02\x00897", "1" * 65])
def test_wildcards_control_characters_and_empty_are_refused(bad):
    with pytest.raises(InvalidNumber):
        parse_number(bad, AU)


@pytest.mark.parametrize("typed", ["alice", 'x" OR "1"="1', "from_user:0289707501 OR to_user:x", "a\\b", "(a)|[b]{c}~"])
def test_other_text_is_a_literal_term_never_query_syntax(typed):
    nq = parse_number(typed, AU)
    assert nq.e164 is None and nq.suffix is None
    q = build_query(nq, MESSAGES, time_range("1h", now=NOW))

    def keys(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k not in {f for f, _ in MESSAGES.numbers} | {e for _, e in MESSAGES.numbers} | {"ts", "cseq_method"}:
                    yield k
                yield from keys(v)
        elif isinstance(x, list):
            for v in x:
                yield from keys(v)

    assert set(keys(q)) <= ALLOWED
    terms = [c["terms"] for c in q["bool"]["filter"][0]["bool"]["should"]]
    assert all(next(iter(t.values())) == [typed.strip()] for t in terms)


def test_registrations_hidden_unless_asked():
    rng = time_range("1h", now=NOW)
    nq = parse_number("0289707501", AU)
    assert build_query(nq, MESSAGES, rng)["bool"]["must_not"] == [{"term": {"cseq_method": "REGISTER"}}]
    assert "must_not" not in build_query(nq, MESSAGES, rng, registrations=True)["bool"]
    assert "must_not" not in build_query(nq, FAMILIES["calls"], rng)["bool"]


@pytest.mark.parametrize("last,delta", [("30m", timedelta(minutes=30)), ("1h", timedelta(hours=1)),
                                        ("3h", timedelta(hours=3)), ("6h", timedelta(hours=6)),
                                        ("1d", timedelta(days=1)), ("5d", timedelta(days=5)), (None, timedelta(days=1))])
def test_last_windows(last, delta):
    rng = time_range(last, now=NOW)
    assert rng.end == NOW and rng.start == NOW - delta


def test_from_to_are_clamped_to_retention():
    rng = time_range(start="2026-11-01T00:00:00Z", end="2026-11-26T10:00:00", now=NOW)
    assert rng.start == NOW - timedelta(days=5)
    assert rng.end == datetime(2026, 11, 26, 10, tzinfo=UTC)  # naive = UTC
    assert time_range(start="2026-11-26T13:00:00+02:00", now=NOW).start == datetime(2026, 11, 26, 11, tzinfo=UTC)
    assert time_range(end="2030-01-01T00:00:00Z", now=NOW).end == NOW + timedelta(days=1)


@pytest.mark.parametrize("kw", [{"last": "2h"}, {"last": "1h", "start": "2026-11-26T00:00:00Z"},
                                {"start": "yesterday"}, {"start": "2026-11-26T10:00:00Z", "end": "2026-11-26T09:00:00Z"},
                                {"start": "2026-11-01T00:00:00Z", "end": "2026-11-10T00:00:00Z"}])
def test_bad_ranges_are_one_clear_error(kw):
    with pytest.raises(InvalidTimeRange):
        time_range(now=NOW, **kw)


def test_only_the_days_in_range_are_searched():
    rng = time_range("5d", now=NOW)
    names = indices_for(MESSAGES, "p-", rng)
    assert names[0] == "p-sip-messages-2026.11.21" and names[-1] == "p-sip-messages-2026.11.26" and len(names) == 6
    assert indices_for(MESSAGES, "", time_range("1h", now=NOW)) == ["sip-messages-2026.11.26"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_a_valid_query_or_invalid_number_never_something_else(text):
    try:
        nq = parse_number(text, AU)
    except InvalidNumber:
        return
    q = build_query(nq, MESSAGES, time_range("1h", now=NOW))
    used = {k for c in q["bool"]["filter"][0]["bool"]["should"] for k in c}
    assert used <= {"term", "terms", "prefix"}
    if nq.suffix:
        assert nq.suffix.isdigit() and len(nq.suffix) >= 6
