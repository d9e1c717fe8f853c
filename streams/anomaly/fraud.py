"""``short_call_burst``: Wangiri ("one ring and cut") and false-answer patterns, from call summaries.

Fed with final :class:`~sipscope.records.CallSummary` records (these calls are short, so their summaries
come within seconds). A call is *short* when it was

* ``cancelled`` (abandoned before ringing),
* ``no_answer`` after at most ``wangiri_max_ring_s`` of ringing (``ring_time_s``), or
* ``answered`` and lasted less than ``wangiri_max_answered_s`` (``duration_s``).

Per source IP and per caller number (E.164, else raw), in a sliding ``wangiri_window_s`` placed at the
calls' ``end_ts``: calls, short calls and distinct called numbers. Raised when there are at least
``wangiri_min_calls`` calls to at least ``wangiri_min_numbers`` distinct numbers and at least
``wangiri_short_ratio`` of them are short. ``observed`` is the short share in percent.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sipscope.records import CallSummary
from streams.anomaly.base import Detector, bucket_width
from streams.anomaly.windows import BUCKETS, Distinct, Window, add_evidence, touch

if TYPE_CHECKING:
    from streams.anomaly.engine import AnomalyEngine


class _Burst:
    __slots__ = ("callees", "ev", "win")

    def __init__(self) -> None:
        self.win = Window(2)  # [short, calls]
        self.callees = Distinct()
        self.ev: list[str] = []

    def to_state(self) -> list:
        return [self.win.to_state(), self.callees.to_state(), self.ev]

    @classmethod
    def from_state(cls, s: list) -> _Burst:
        o = cls.__new__(cls)
        o.win, o.callees, o.ev = Window.from_state(s[0]), Distinct.from_state(s[1]), list(s[2])
        return o


class ShortCallBurst(Detector):
    name = "short_call_burst"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        s = eng.s
        self.width = bucket_width(s.wangiri_window_s)
        self.cap = max(4 * s.wangiri_min_numbers, 64)
        self.keys: OrderedDict[str, _Burst] = OrderedDict()

    def is_short(self, c: CallSummary) -> bool:
        s = self.s
        o = c.outcome
        if o == "cancelled":
            return True
        if o == "no_answer":
            return c.ring_time_s is not None and c.ring_time_s <= s.wangiri_max_ring_s
        if o == "answered":
            return c.duration_s is not None and c.duration_s < s.wangiri_max_answered_s
        return False

    def on_call(self, c: CallSummary, eng: AnomalyEngine) -> None:
        if not c.final:
            return
        short = 1 if self.is_short(c) else 0
        callee = c.callee_e164 or c.ruri_user_e164 or c.callee or c.ruri_user or ""
        caller = c.caller_e164 or c.caller
        ts = c.end_ts
        b = int(ts // self.width)
        for st, subj in (("ip", c.src_ip), ("number", caller)):
            if subj:
                self._count(st, subj, short, callee, b, ts, c, eng)

    def _count(self, st: str, subj: str, short: int, callee: str, b: int, ts: float, c: CallSummary,
               eng: AnomalyEngine) -> None:
        s = self.s
        k = touch(self.keys, f"{st}|{subj}", _Burst, s.max_keys)
        k.win.add(b, 0, short)
        k.win.add(b, 1, 1)
        k.callees.add(b, callee, self.cap)
        n_short, n = k.win.expire(b, BUCKETS)
        numbers = k.callees.expire(b, BUCKETS)
        if short:
            add_evidence(k.ev, c.call_id, s.evidence_max)
        if not short or n < s.wangiri_min_calls or numbers < s.wangiri_min_numbers:
            return
        share = n_short / n
        if share >= s.wangiri_short_ratio:
            who = f"from {subj}" if st == "ip" else f"from caller {subj}"
            eng.hit(self.name, st, subj, ts, s.wangiri_window_s, 100.0 * share, 100.0 * s.wangiri_short_ratio, None,
                    f"{n_short:.0f} of {n:.0f} calls {who} to {numbers} numbers in {s.wangiri_window_s:.0f} s were "
                    f"short (cancelled, rang <= {s.wangiri_max_ring_s:.0f} s or answered < "
                    f"{s.wangiri_max_answered_s:.0f} s)", k.ev, "critical" if n >= s.critical_factor * s.wangiri_min_calls else "warning")

    def to_state(self) -> Any:
        return [[k, v.to_state()] for k, v in self.keys.items()]

    def load(self, state: Any) -> None:
        self.keys = OrderedDict((k, _Burst.from_state(v)) for k, v in state)
