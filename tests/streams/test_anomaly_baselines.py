"""streams/baselines.py: EWMA arithmetic by hand, idle minutes, freezing, warm-up, hour-of-day slots, state."""

from __future__ import annotations

import msgspec
import pytest

from streams.baselines import Baselines, alpha_for, hour_minutes_between

M0 = 28_333_333  # an epoch minute


def test_alpha_from_half_life():
    assert alpha_for(1) == pytest.approx(0.5)
    a = alpha_for(60)
    assert (1 - a) ** 60 == pytest.approx(0.5)


def test_ewma_by_hand():
    b = Baselines(halflife_min=1, warmup_min=1)  # alpha = 0.5
    b.observe("k", M0, 10)
    assert b.expected("k", M0 + 1) == 10  # the first value starts the mean
    b.observe("k", M0 + 1, 20)
    assert b.expected("k", M0 + 2) == 15  # 10 + 0.5 * (20 - 10)
    b.observe("k", M0 + 2, 15)
    assert b.expected("k", M0 + 3) == 15


def test_idle_minutes_count_as_zeros():
    b = Baselines(halflife_min=1, warmup_min=1)
    b.observe("k", M0, 16)
    assert b.expected("k", M0 + 3) == 4  # minutes M0+1 and M0+2 were idle: 16 * 0.5 * 0.5
    b.observe("k", M0 + 3, 4)  # two zeros applied, then 4: 16 -> 8 -> 4 -> 4
    assert b.expected("k", M0 + 4) == 4
    assert b.keys["k"].flat.n == 4


def test_warmup_counts_minutes_of_history():
    b = Baselines(halflife_min=10, warmup_min=5)
    b.observe("k", M0, 3)
    assert b.expected("k", M0 + 1) is None
    assert b.expected("k", M0 + 4) is None  # 1 observed + 3 idle = 4 minutes
    assert b.expected("k", M0 + 5) is not None  # 5 minutes of history (1 seen, 4 idle)
    assert b.expected("nope", M0) is None


def test_frozen_learns_neither_the_value_nor_the_idle_minutes():
    b = Baselines(halflife_min=1, warmup_min=1)
    b.observe("k", M0, 10)
    b.observe("k", M0 + 5, 1000, frozen=True)  # attack minute after 4 idle ones
    assert b.expected("k", M0 + 6) == 10
    b.observe("k", M0 + 6, 20)
    assert b.expected("k", M0 + 7) == 15
    fresh = Baselines()
    fresh.observe("new", M0, 5, frozen=True)
    assert "new" not in fresh


def test_same_or_older_minute_is_ignored():
    b = Baselines(halflife_min=1, warmup_min=1)
    b.observe("k", M0 + 1, 10)
    b.observe("k", M0 + 1, 90)
    b.observe("k", M0, 90)
    assert b.expected("k", M0 + 2) == 10


def test_hour_minutes_between():
    day = 1440 * 19000  # a UTC midnight, in minutes
    assert hour_minutes_between(day, day + 1440, 0) == 59  # minutes 1..59 of hour 0 (strictly between)
    assert hour_minutes_between(day - 1, day + 1440, 0) == 60
    assert hour_minutes_between(day, day + 1440, 5) == 60
    assert hour_minutes_between(day + 10, day + 11, 0) == 0
    assert hour_minutes_between(day + 10, day + 3 * 1440 + 10, 0) == 3 * 60 - 1


def test_seasonal_slot_is_used_once_warm():
    b = Baselines(halflife_min=60, warmup_min=1, seasonal=True, seasonal_warmup_min=2)
    day = 1440 * 19000
    b.observe("k", day + 9 * 60, 100)  # 09:00 busy
    b.observe("k", day + 9 * 60 + 1, 100)
    b.observe("k", day + 3 * 60 + 1440, 2)  # 03:00 next day, quiet
    b.observe("k", day + 3 * 60 + 1441, 2)
    # 09:00 the day after: the 09 slot (warm, decayed over the idle 09:xx minutes) not the flat mean
    at9 = b.expected("k", day + 2 * 1440 + 9 * 60)
    flat = b.keys["k"].flat
    assert at9 is not None and at9 > 2 * flat.mean
    at3 = b.expected("k", day + 2 * 1440 + 3 * 60 + 2)
    assert at3 is not None and at3 < 2.1


def test_keys_are_capped_least_recently_observed_first():
    b = Baselines(max_keys=3)
    for i, k in enumerate("abcd"):
        b.observe(k, M0 + i, 1)
    assert set(b.keys) == {"b", "c", "d"}
    b.observe("b", M0 + 9, 1)
    b.observe("e", M0 + 10, 1)
    assert set(b.keys) == {"b", "d", "e"}


def test_state_round_trip_through_msgpack():
    b = Baselines(halflife_min=5, warmup_min=2, seasonal=True)
    for i in range(30):
        b.observe(("ip", "x") if i % 2 else "trunk|a", M0 + i, i)
    c = Baselines(halflife_min=5, warmup_min=2, seasonal=True)
    c.load(msgspec.msgpack.decode(msgspec.msgpack.encode(b.to_state())))
    for key in (("ip", "x"), "trunk|a"):
        assert c.expected(key, M0 + 40) == b.expected(key, M0 + 40)
