"""``streams/capacity.py``: Erlang B against published tables, holding times, per-minute traffic, concurrency,
busy hour, and the ``--erlang-b`` command.

Erlang B table values used below (offered traffic A in Erlangs that N circuits carry at blocking B), as
printed (3 significant figures) in the standard Erlang B tables, e.g. the Erlang B appendix of J. R. Boucher,
*Traffic System Design Handbook* (IEEE Press, 1993) and the Erlang B table of appendix A.3.2 of
J. Dunlop, D. Girma, J. Irvine, *Digital Mobile Communications and the TETRA System* (Wiley, 1999);
the check value 15 circuits -> 8.108 Erl at 1 % is the worked example of the Erlang B calculator manual
at erlang.com ("How much traffic can a trunk group handle?") and of
shared/reference/kpis-and-anomalies.md.
"""

from __future__ import annotations

import math
import random

import pytest

from streams.capacity import (
    ALL,
    UNTRUNKED,
    CallTimes,
    busy_hour,
    circuits_for,
    concurrency,
    erlang_b,
    holding,
    occupancy_per_minute,
    plan_capacity,
    traffic_for,
)
from streams.capacity_cli import main as capacity_main
from streams.capacity_sources import call_from_doc, load_trunk_map, renamed

#: (circuits N, blocking B, table traffic A in Erlangs)
ERLANG_B_TABLE = [
    (1, 0.01, 0.0101), (2, 0.01, 0.153), (5, 0.01, 1.36), (10, 0.01, 4.46), (15, 0.01, 8.11), (20, 0.01, 12.0),
    (30, 0.01, 20.3), (40, 0.01, 29.0), (50, 0.01, 37.9), (100, 0.01, 84.1),
    (10, 0.02, 5.08), (20, 0.02, 13.2), (50, 0.02, 40.3),
    (50, 0.005, 36.0), (10, 0.001, 3.09), (30, 0.05, 24.8),
]


def _sig3(x: float) -> float:
    return float(f"{x:.3g}")


@pytest.mark.parametrize(("n", "b", "a"), ERLANG_B_TABLE)
def test_traffic_for_matches_the_published_table(n, b, a):
    assert _sig3(traffic_for(n, b)) == a


@pytest.mark.parametrize(("n", "b", "a"), ERLANG_B_TABLE)
def test_circuits_for_is_the_inverse(n, b, a):
    capacity = traffic_for(n, b)
    assert circuits_for(capacity * 0.9999, b)[0] == n
    assert circuits_for(capacity * 1.001, b)[0] == n + 1
    # the table's own (rounded) value needs N or N+1 circuits, never fewer
    assert circuits_for(a, b)[0] in (n, n + 1)


def test_the_check_value_15_circuits_carry_8_108_erlangs_at_1_percent():
    n, blocking = circuits_for(8.108, 0.01)
    assert n == 15 and blocking <= 0.01
    assert erlang_b(8.108, 15) == pytest.approx(0.01, abs=2e-6)
    assert erlang_b(8.108, 14) > 0.01
    assert round(traffic_for(15, 0.01), 3) == 8.108


def _erlang_b_logspace(a: float, n: int) -> float:
    """The closed form A^N/N! / sum_k A^k/k!, summed in log space (no overflow)."""
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(n + 1)]
    top = max(logs)
    return math.exp(logs[-1] - top - math.log(sum(math.exp(v - top) for v in logs)))


@pytest.mark.parametrize(("a", "n"), [(0.5, 1), (2.0, 2), (8.108, 15), (150.0, 160), (1000.0, 1000),
                                      (9500.0, 10000), (20000.0, 10000)])
def test_recursion_is_stable_and_exact(a, n):
    b = erlang_b(a, n)
    assert 0 < b < 1 and math.isfinite(b)
    assert b == pytest.approx(_erlang_b_logspace(a, n), rel=1e-9)


def test_small_cases_by_hand():
    assert erlang_b(1.0, 1) == 0.5  # A / (1 + A)
    assert erlang_b(2.0, 2) == pytest.approx(2.0 / 5.0)  # (A^2/2) / (1 + A + A^2/2)
    assert erlang_b(5.0, 0) == 1.0 and erlang_b(0.0, 3) == 0.0
    assert circuits_for(0.0, 0.01) == (1, 0.0)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError):
            circuits_for(1.0, bad)


# -- holding times, per-minute traffic, concurrency ---------------------------------------------------

ANSWERED = CallTimes(start=100.0, end=221.0, answer=110.0, bye=220.0, final=110.0, duration=110.0)
BUSY = CallTimes(start=100.0, end=102.1, final=102.0)


def test_holding_modes():
    assert holding(ANSWERED) == (100.0, 220.0)  # INVITE to BYE, ringing included
    assert holding(ANSWERED, "answered") == (110.0, 220.0)
    assert holding(BUSY) == (100.0, 102.0)  # INVITE to the final response
    assert holding(BUSY, "answered") is None
    no_bye = CallTimes(start=0.0, end=50.0, answer=5.0, duration=45.0)  # expired / capture end
    assert holding(no_bye) == (0.0, 50.0) and holding(no_bye, "answered") == (5.0, 50.0)
    with pytest.raises(ValueError):
        holding(BUSY, "talk")


def test_occupancy_per_minute_is_exact():
    occ = occupancy_per_minute([(30.0, 150.0), (170.0, 175.0), (-30.0, 10.0), (200.0, 400.0)], t0=0.0, minutes=5)
    # minute 0: 30 s of the first call + 10 s of the one begun before t0; minute 3: 40 s of the last one
    assert occ == [30.0 + 10.0, 60.0, 30.0 + 5.0, 40.0, 60.0]
    rng = random.Random(1)
    holds = [(s, s + rng.expovariate(1 / 200)) for s in (rng.uniform(0, 3000) for _ in range(500))]
    occ = occupancy_per_minute(holds, 0.0, 600)
    assert sum(occ) == pytest.approx(sum(e - s for s, e in holds))


def test_concurrency_sweep():
    peak, at, per_min = concurrency([(0.0, 10.0), (10.0, 20.0)], 0.0, 2)
    assert (peak, at) == (1, 0.0)  # one ends as the other starts: never two at once
    peak, at, per_min = concurrency([(0.0, 70.0), (5.0, 15.0), (6.0, 130.0), (65.0, 66.0)], 0.0, 4)
    assert (peak, at) == (3, 6.0)
    assert per_min == [3, 3, 1, 0]


# -- busy hour ---------------------------------------------------------------------------------------

def test_busy_hour_quarter_hours_versus_sliding_minutes():
    occ = [30.0] * 1440
    for m in range(10 * 60 + 7, 11 * 60 + 7):  # a designed peak hour 10:07-11:07
        occ[m] = 60.0
    sliding = busy_hour(occ, t0=0.0, step=1)
    assert sliding.start == (10 * 60 + 7) * 60 and sliding.erlangs == 1.0
    quarters = busy_hour(occ, t0=0.0, step=15)
    assert quarters.start == 10 * 3600 and quarters.erlangs == pytest.approx((53 * 60 + 7 * 30) / 3600)
    with pytest.raises(ValueError):
        busy_hour(occ, 0.0, step=7)


def test_time_consistent_busy_hour_over_days():
    d1, d2 = [10.0] * 1440, [10.0] * 1440  # seconds of holding time per minute
    d1[600:660] = [60.0] * 60  # day 1: the single busiest hour of the two days, 10:00-11:00
    d1[900:960] = [50.0] * 60  # day 1: 15:00 busy too
    d2[900:960] = [60.0] * 60  # day 2: 15:00-16:00, 10:00 quiet
    peak = busy_hour(d1 + d2, t0=0.0, step=15)
    assert peak.start == 10 * 3600 and peak.erlangs == 1.0
    tcbh = busy_hour(d1 + d2, t0=0.0, step=15, method="tcbh")
    assert (tcbh.start, tcbh.days) == (15 * 3600, 2)
    assert tcbh.erlangs == pytest.approx((50.0 + 60.0) / 2 / 60)  # seconds per minute / 60 = Erlangs


def test_plan_capacity_rows_per_trunk():
    calls = [CallTimes(3600.0 + i * 10, 3600.0 + i * 10 + 120, answer=3600.0 + i * 10 + 5,
                       bye=3600.0 + i * 10 + 120, src_trunk="a" if i % 2 else None, dst_trunk="b" if i % 3 else None)
             for i in range(360)]
    rows = {r.key: r for r in plan_capacity(calls, step=15)}
    assert next(iter(rows)) == ALL
    assert rows[ALL].calls == 360 and rows[ALL].bh_calls == 360
    # a call every 10 s holding 120 s: 12 in progress in steady state; the last 11 calls run past 02:00
    assert rows[ALL].busy_hour.start == 3600.0
    assert rows[ALL].erlangs == pytest.approx((360 * 120 - sum(range(10, 111, 10))) / 3600)
    assert rows[ALL].erlangs_calls == pytest.approx(12.0)
    assert rows[ALL].peak_concurrent == 12
    assert rows["a"].calls == 180 and rows["b"].calls == 240
    assert rows[UNTRUNKED].calls == sum(1 for i in range(360) if not i % 2 and not i % 3)
    assert rows[ALL].circuits == circuits_for(rows[ALL].erlangs, 0.01)[0]
    answered = {r.key: r for r in plan_capacity(calls, holding_mode="answered")}
    assert answered[ALL].bh_mean_hold_s == pytest.approx(115.0)
    assert plan_capacity([]) == []


# -- sources -----------------------------------------------------------------------------------------

def test_indexed_call_documents_and_trunk_maps(tmp_path):
    doc = {"start_ts": "2025-01-06T10:00:00.000000Z", "invite_ts": "2025-01-06T10:00:00.000000Z",
           "end_ts": "2025-01-06T10:02:00.500000Z", "answer_ts": "2025-01-06T10:00:05.000000Z",
           "bye_ts": "2025-01-06T10:02:00.000000Z", "duration_s": 115.0, "src_ip": "203.0.113.9",
           "dst_ip": "10.10.0.10", "src_trunk": "old"}
    c = call_from_doc(doc)
    assert (c.start, c.answer, c.bye, c.duration) == (1736157600.0, 1736157605.0, 1736157720.0, 115.0)
    assert holding(c) == (1736157600.0, 1736157720.0)
    (tmp_path / "t.json").write_text('{"203.0.113.0/24": "carrier-a"}')
    mapping = load_trunk_map(str(tmp_path / "t.json"), ["10.10.0.0/16=core"])
    assert mapping == {"203.0.113.0/24": "carrier-a", "10.10.0.0/16": "core"}
    (renamed_call,) = renamed([c], mapping)
    assert (renamed_call.src_trunk, renamed_call.dst_trunk) == ("carrier-a", "core")
    assert list(renamed([c], {})) == [c]
    for bad in ('["x"]', '{"not-an-ip": "x"}'):
        with pytest.raises(ValueError):
            load_trunk_map(bad)


# -- the command -------------------------------------------------------------------------------------

def test_erlang_b_command(capsys):
    assert capacity_main(["--erlang-b", "--traffic", "8.108", "--blocking", "0.01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("15 circuits for 8.108 Erlangs at 0.01 blocking") and "0.00999" in out
    assert capacity_main(["--erlang-b", "--circuits", "15", "--blocking", "0.01"]) == 0
    assert "15 circuits carry 8.108 Erlangs" in capsys.readouterr().out
    assert capacity_main(["--erlang-b", "--traffic", "8.108", "--circuits", "15"]) == 0
    assert "blocking 0.0099" in capsys.readouterr().out
    assert capacity_main(["--erlang-b"]) == 2
    assert capacity_main(["--erlang-b", "--traffic", "5", "--blocking", "2"]) == 2
