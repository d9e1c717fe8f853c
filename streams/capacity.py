"""Capacity planning from call records: busy hour, offered traffic in Erlangs, peak concurrency, Erlang B.

Pure: call times in, numbers out (no I/O; the sources are in ``streams/capacity_sources.py``, the charts
in ``streams/capacity_charts.py``, the command in ``streams/capacity_cli.py``).

Definitions used
----------------
* **Holding time** of a call (``holding="seizure"``, the default): from its first INVITE to its end (the
  BYE of an answered call, else the final response, else its last message) - the time it occupies a
  channel of a SIP trunk with a call limit, ringing included, the way circuit groups are measured.
  ``holding="answered"``: conversation time only (200 OK to BYE), for answered calls.
* **Traffic** (Erlangs) of an interval = sum of the holding time inside the interval / its length (the
  mean number of calls in progress; E.600's traffic intensity). Computed exactly per minute.
* **Busy hour**: the continuous 60-minute window with the most traffic. Windows start every ``step``
  minutes on the clock: ``step=15`` (default) is the ITU-T E.500 read-out - four consecutive quarter
  hours, the *peak full hour*; ``step=1`` slides per minute. ``method="tcbh"`` gives the time-consistent
  busy hour over several days: the window starting at the same time of day whose traffic averaged over
  the days is greatest.
* **Offered traffic A** = the busy hour's traffic (``erlangs``). For comparison ``erlangs_calls`` =
  calls started in the busy hour x their mean holding time / 3600 (the textbook ``A = lambda * h``).
  What a capture shows is carried traffic; it equals the offered traffic when nothing was blocked.
* **Peak concurrent calls**: the most calls holding at one instant (a call ending at the instant another
  starts does not count twice).
* **Erlang B**: ``B(A, 0) = 1; B(A, n) = A B(A, n-1) / (n + A B(A, n-1))``. Every step stays in [0, 1], so
  the recursion is numerically stable for any n (no factorials, no powers). Circuits = smallest N with
  ``B(A, N) <= grade of service``. Check: 15 circuits carry 8.108 Erlangs at 1 %.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MINUTE = 60.0
HOUR_MIN = 60
ALL = "*"
"""Key of the row of all calls together."""
UNTRUNKED = "~untrunked"
"""Key of calls whose addresses name no trunk (with ``by="trunk"``)."""


# -- Erlang B ----------------------------------------------------------------------------------------------

def erlang_b(traffic: float, circuits: int) -> float:
    """Blocking probability of ``traffic`` Erlangs offered to ``circuits`` circuits (Erlang B)."""
    if traffic < 0 or circuits < 0:
        raise ValueError("traffic and circuits must be >= 0")
    b = 1.0
    for n in range(1, circuits + 1):
        ab = traffic * b
        b = ab / (n + ab)
    return b


def circuits_for(traffic: float, blocking: float, limit: int = 10_000_000) -> tuple[int, float]:
    """``(N, B(A, N))``: the fewest circuits whose blocking is at most ``blocking`` for ``traffic`` Erlangs."""
    if not 0 < blocking < 1:
        raise ValueError("blocking (grade of service) must be between 0 and 1, e.g. 0.01")
    if traffic < 0:
        raise ValueError("traffic must be >= 0")
    b, n = 1.0, 0
    while b > blocking:
        n += 1
        ab = traffic * b
        b = ab / (n + ab)
        if n >= limit:
            raise ValueError(f"more than {limit} circuits needed")
    return n, b


def traffic_for(circuits: int, blocking: float, tol: float = 1e-9) -> float:
    """The most Erlangs ``circuits`` circuits carry at ``blocking`` (the inverse, by bisection: B grows with A)."""
    if circuits <= 0:
        return 0.0
    if not 0 < blocking < 1:
        raise ValueError("blocking must be between 0 and 1")
    lo, hi = 0.0, float(circuits)
    while erlang_b(hi, circuits) < blocking:
        hi *= 2
    while hi - lo > tol * max(1.0, hi):
        mid = (lo + hi) / 2
        if erlang_b(mid, circuits) <= blocking:
            lo = mid
        else:
            hi = mid
    return lo


# -- call times ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CallTimes:
    """What capacity needs from one call (from a :class:`~sipscope.records.CallSummary` or an indexed one)."""

    start: float
    end: float
    answer: float | None = None
    bye: float | None = None
    final: float | None = None
    duration: float | None = None
    src_ip: str | None = None
    dst_ip: str | None = None
    src_trunk: str | None = None
    dst_trunk: str | None = None

    @classmethod
    def of(cls, call) -> CallTimes:
        """From any object with the attributes of ``CallSummary``."""
        return cls(call.invite_ts or call.start_ts, call.end_ts, call.answer_ts, call.bye_ts, call.final_ts,
                   call.duration_s, call.src_ip, call.dst_ip, call.src_trunk, call.dst_trunk)


def holding(call: CallTimes, mode: str = "seizure") -> tuple[float, float] | None:
    """``(start, end)`` of the call's holding time, or None when it holds nothing in this mode."""
    if mode == "answered":
        if call.answer is None:
            return None
        if call.duration is not None:
            return call.answer, call.answer + call.duration
        return call.answer, max(call.answer, call.bye or call.end)
    if mode != "seizure":
        raise ValueError(f"holding mode {mode!r}: seizure or answered")
    if call.answer is not None:
        end = call.bye or (call.answer + call.duration if call.duration is not None else call.end)
    else:
        end = call.final or call.end
    return call.start, max(call.start, end)


def keys_of(call: CallTimes, by: str = "trunk") -> tuple[str, ...]:
    """The rows a call counts in besides :data:`ALL`: its trunks (source and destination, once each),
    or its source / destination address."""
    if by == "trunk":
        names = tuple(dict.fromkeys(n for n in (call.src_trunk, call.dst_trunk) if n))
        return names or (UNTRUNKED,)
    if by == "src":
        return (call.src_ip or "?",)
    if by == "dst":
        return (call.dst_ip or "?",)
    raise ValueError(f"group by {by!r}: trunk, src or dst")


# -- per-minute series ---------------------------------------------------------------------------------

def occupancy_per_minute(holds: Iterable[tuple[float, float]], t0: float, minutes: int) -> list[float]:
    """Seconds of holding time inside each minute ``[t0 + 60 k, t0 + 60 (k + 1))``, exactly."""
    occ = [0.0] * minutes
    for s, e in holds:
        i0, i1 = int((s - t0) // MINUTE), int((e - t0) // MINUTE)
        if i0 == i1:
            if 0 <= i0 < minutes:
                occ[i0] += e - s
            continue
        if 0 <= i0 < minutes:
            occ[i0] += t0 + (i0 + 1) * MINUTE - s
        for k in range(max(i0 + 1, 0), min(i1, minutes)):
            occ[k] += MINUTE
        if 0 <= i1 < minutes:
            occ[i1] += e - (t0 + i1 * MINUTE)
    return occ


def concurrency(holds: Sequence[tuple[float, float]], t0: float, minutes: int) -> tuple[int, float | None, list[int]]:
    """``(peak, time of the peak, most calls in progress per minute)`` by a sweep over starts and ends
    (at equal times ends go first)."""
    events = sorted([(s, 1) for s, _ in holds] + [(e, -1) for _, e in holds])
    per_min = [0] * minutes
    cur = peak = 0
    peak_ts: float | None = None
    last = 0
    for t, d in events:
        b = min(max(int((t - t0) // MINUTE), 0), minutes - 1)
        for k in range(last + 1, b + 1):
            per_min[k] = cur
        last = max(last, b)
        cur += d
        per_min[b] = max(per_min[b], cur)
        if cur > peak:
            peak, peak_ts = cur, t
    for k in range(last + 1, minutes):
        per_min[k] = cur
    return peak, peak_ts, per_min


# -- busy hour -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BusyHour:
    start: float
    """Epoch seconds of the window's start (for ``tcbh``: on the first day of the data)."""
    erlangs: float
    """Traffic of the window (for ``tcbh``: averaged over the days)."""
    days: int = 1


def busy_hour(occ: Sequence[float], t0: float, step: int = 15, method: str = "peak") -> BusyHour:
    """The busy hour of per-minute occupancy ``occ`` starting at ``t0`` (aligned to the clock hour; for
    ``tcbh`` to midnight UTC). Ties go to the earliest window."""
    if step <= 0 or (HOUR_MIN % step and step % HOUR_MIN):
        raise ValueError("step must divide 60 minutes (1, 5, 15, 30, 60)")
    n = len(occ)
    prefix = [0.0]
    for v in occ:
        prefix.append(prefix[-1] + v)

    def window(k: int) -> float:
        return (prefix[min(k + HOUR_MIN, n)] - prefix[min(k, n)]) / 3600.0

    if method == "peak":
        starts = range(0, max(n - HOUR_MIN, 0) + 1, step)
        best = max(starts, key=lambda k: (window(k), -k))
        return BusyHour(t0 + best * MINUTE, window(best))
    if method != "tcbh":
        raise ValueError(f"busy hour method {method!r}: peak or tcbh")
    days = max(1, math.ceil(n / 1440))
    offsets = range(0, 1440, step)
    avg = {j: sum(window(d * 1440 + j) for d in range(days)) / days for j in offsets}
    best = max(offsets, key=lambda j: (avg[j], -j))
    return BusyHour(t0 + best * MINUTE, avg[best], days)


# -- the report ----------------------------------------------------------------------------------------

@dataclass
class TrunkCapacity:
    """One row of ``sipscope capacity``."""

    key: str
    calls: int
    """Calls with a holding time in the data."""
    busy_hour: BusyHour
    erlangs: float
    """Offered traffic A: traffic of the busy hour."""
    bh_calls: int
    """Calls that started in the busy hour (BHCA)."""
    bh_mean_hold_s: float
    """Mean holding time of those calls."""
    erlangs_calls: float
    """bh_calls x bh_mean_hold_s / 3600."""
    peak_concurrent: int
    peak_ts: float | None
    circuits: int
    """Circuits needed for A at the grade of service (Erlang B)."""
    blocking: float
    """Erlang B blocking of A on that many circuits."""
    t0: float = 0.0
    occupancy: list[float] = field(default_factory=list, repr=False)
    """Seconds of holding time per minute from t0 (the charts)."""
    concurrent: list[int] = field(default_factory=list, repr=False)
    """Most calls in progress per minute from t0."""


def plan_capacity(calls: Iterable[CallTimes], *, grade: float = 0.01, step: int = 15, holding_mode: str = "seizure",
                  by: str = "trunk", method: str = "peak") -> list[TrunkCapacity]:
    """Rows for all calls (key :data:`ALL`) and for each trunk / address, largest traffic first after ALL."""
    groups: dict[str, list[tuple[float, float]]] = {ALL: []}
    for call in calls:
        h = holding(call, holding_mode)
        if h is None:
            continue
        groups[ALL].append(h)
        for key in keys_of(call, by):
            groups.setdefault(key, []).append(h)
    if not groups[ALL]:
        return []
    first = min(s for s, _ in groups[ALL])
    last = max(e for _, e in groups[ALL])
    align = 86400 if method == "tcbh" else 3600
    t0 = math.floor(first / align) * align
    minutes = max(HOUR_MIN, math.ceil((last - t0) / MINUTE) + 1)
    minutes = math.ceil(minutes / HOUR_MIN) * HOUR_MIN
    rows = [_row(key, holds, t0, minutes, grade, step, method) for key, holds in groups.items()]
    return sorted(rows, key=lambda r: (r.key != ALL, -r.erlangs, r.key))


def _row(key: str, holds: list[tuple[float, float]], t0: float, minutes: int, grade: float, step: int,
         method: str) -> TrunkCapacity:
    occ = occupancy_per_minute(holds, t0, minutes)
    bh = busy_hour(occ, t0, step, method)
    peak, peak_ts, per_min = concurrency(holds, t0, minutes)
    if method == "tcbh":
        tod = (bh.start - t0) % 86400
        in_bh = [e - s for s, e in holds if ((s - t0) % 86400 - tod) % 86400 < 3600]
        in_bh_per_day = len(in_bh) / bh.days
    else:
        in_bh = [e - s for s, e in holds if bh.start <= s < bh.start + 3600]
        in_bh_per_day = len(in_bh)
    mean_hold = sum(in_bh) / len(in_bh) if in_bh else 0.0
    circuits, blocking = circuits_for(bh.erlangs, grade) if bh.erlangs > 0 else (0, 0.0)
    return TrunkCapacity(key=key, calls=len(holds), busy_hour=bh, erlangs=bh.erlangs, bh_calls=round(in_bh_per_day),
                         bh_mean_hold_s=mean_hold, erlangs_calls=in_bh_per_day * mean_hold / 3600,
                         peak_concurrent=peak, peak_ts=peak_ts, circuits=circuits, blocking=blocking, t0=t0,
                         occupancy=occ, concurrent=per_min)
