"""Call-quality detectors per trunk, on outcomes known in real time from the messages.

Subjects are the call's source and destination trunks (alias map), or its destination IP when the
destination is no known trunk. Outcomes come from :class:`~streams.anomaly.calltrack.InviteTracker` (the
first final response to the initial INVITE, as it happens), not from the call summaries, which arrive only
when a call is over and would make answered calls look late.

``asr_drop``
    Sliding ``asr_window_s`` of answered (2xx) and attempts per trunk. Attempts are initial INVITEs with a
    final response other than 3xx (as RFC 6076 SER) or with no response at all (Timer B); unanswered auth
    challenges and calls still ringing when they time out are left out. At the end of each minute, with at
    least ``asr_min_attempts`` attempts and a warm baseline (EWMAs of answered and of attempts per minute;
    baseline ASR = their ratio), raised when ASR <= baseline - min(``asr_drop_points``, baseline x
    ``asr_drop_rel``); ``critical`` at half that threshold.

``error_spike``
    Sliding ``error_window_s`` per trunk of session requests (same attempts, 3xx included) and
    ineffective ones (RFC 6076 ISA: 408, any 5xx, or no response at all). With at least
    ``error_min_attempts``, raised when the ISA share reaches ``error_warn_pct`` (warning) or
    ``error_critical_pct`` (critical): the 0-5 / 5-15 / >15 % bands.

``long_pdd``
    Sliding ``pdd_window_s`` per trunk of post-dial delays (INVITE to first 18x, else to the final
    response). With at least ``pdd_min_calls``, raised when at least ``pdd_slow_ratio`` of them exceed
    ``pdd_threshold_ms`` (0.5: the median PDD is above it). ``observed`` is that share in percent.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sipscope.records import SipMessage
from streams.anomaly.base import (
    Detector,
    Keyed,
    bucket_width,
    dump_table,
    load_table,
    split,
)
from streams.anomaly.calltrack import ANSWER, FINAL, PROVISIONAL, TIMEOUT, Call
from streams.anomaly.windows import BUCKETS, add_evidence, touch

if TYPE_CHECKING:
    from streams.anomaly.engine import AnomalyEngine


def _what(st: str, subj: str) -> str:
    return f"trunk {subj}" if st == "trunk" else f"calls to {subj}"


class AsrDrop(Detector):
    name = "asr_drop"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        self.width = bucket_width(eng.s.asr_window_s)
        self.keys: OrderedDict[str, Keyed] = OrderedDict()
        """subject -> window [answered, attempts], extra = [minute, answered, attempts] of the current minute."""
        self.ans = eng.new_baselines()
        self.att = eng.new_baselines()

    def on_call_event(self, ev: int, c: Call, m: SipMessage | None, eng: AnomalyEngine) -> None:
        if ev == ANSWER:
            ans, ts = 1, c.final_ts
        elif ev == FINAL:
            if 300 <= (c.final_status or 0) < 400:
                return
            ans, ts = 0, c.final_ts
        elif ev == TIMEOUT and not c.responded:
            ans, ts = 0, c.end_ts
        else:
            return
        s = self.s
        b = int(ts // self.width)
        minute = int(ts // 60)
        for key in c.keys:
            k = touch(self.keys, key, lambda: Keyed(2), s.max_keys)
            k.win.add(b, 0, ans)
            k.win.add(b, 1, 1)
            if ans == 0:
                add_evidence(k.ev, c.call_id, s.evidence_max)
            roll = k.extra
            if roll is None:
                k.extra = [minute, ans, 1]
            else:
                if minute > roll[0]:
                    self._fold(key, roll, eng)
                    roll[0], roll[1], roll[2] = minute, 0, 0
                roll[1] += ans
                roll[2] += 1

    def _fold(self, key: str, roll: list, eng: AnomalyEngine) -> None:
        st, subj = split(key)
        frozen = eng.frozen(self.name, st, subj)
        self.ans.observe(key, roll[0], roll[1], frozen)
        self.att.observe(key, roll[0], roll[2], frozen)

    def on_minute(self, minute: int, eng: AnomalyEngine) -> None:
        s = self.s
        end = (minute + 1) * 60.0
        b = int((end - 1e-6) // self.width)
        idle = []
        for key, k in self.keys.items():
            ans, att = k.win.expire(b, BUCKETS)
            roll = k.extra
            if att >= s.asr_min_attempts:
                ba, bt = self.ans.expected(key, minute), self.att.expected(key, minute)
                if ba is not None and bt:
                    base = 100.0 * ba / bt
                    obs = 100.0 * ans / att
                    thr = base - min(s.asr_drop_points, base * s.asr_drop_rel)
                    if obs <= thr:
                        st, subj = split(key)
                        eng.hit(self.name, st, subj, end, s.asr_window_s, obs, thr, base,
                                f"ASR of {_what(st, subj)} {obs:.1f} % ({ans:.0f}/{att:.0f}) in {s.asr_window_s:.0f} s, "
                                f"baseline {base:.1f} %", k.ev, "critical" if obs <= thr / 2 else "warning")
            if roll is not None and roll[0] <= minute:
                self._fold(key, roll, eng)
                roll[0], roll[1], roll[2] = minute + 1, 0, 0
            if k.win.empty():
                idle.append(key)
        for key in idle:
            del self.keys[key]

    def to_state(self) -> Any:
        return {"keys": dump_table(self.keys), "ans": self.ans.to_state(), "att": self.att.to_state()}

    def load(self, state: Any) -> None:
        self.keys = load_table(state["keys"])
        self.ans.load(state["ans"])
        self.att.load(state["att"])


class ErrorSpike(Detector):
    name = "error_spike"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        self.width = bucket_width(eng.s.error_window_s)
        self.keys: OrderedDict[str, Keyed] = OrderedDict()
        """subject -> window [ineffective, session requests]."""

    def on_call_event(self, ev: int, c: Call, m: SipMessage | None, eng: AnomalyEngine) -> None:
        if ev == ANSWER or ev == FINAL:
            st = c.final_status or 0
            bad, ts = (1 if st == 408 or 500 <= st < 600 else 0), c.final_ts
        elif ev == TIMEOUT and not c.responded:
            bad, ts = 1, c.end_ts
        else:
            return
        s = self.s
        b = int(ts // self.width)
        for key in c.keys:
            k = touch(self.keys, key, lambda: Keyed(2), s.max_keys)
            k.win.add(b, 0, bad)
            k.win.add(b, 1, 1)
            isa, total = k.win.expire(b, BUCKETS)
            if bad:
                add_evidence(k.ev, c.call_id, s.evidence_max)
            if total < s.error_min_attempts or not bad:
                continue
            pct = 100.0 * isa / total
            if pct >= s.error_warn_pct:
                st, subj = split(key)
                eng.hit(self.name, st, subj, ts, s.error_window_s, pct, s.error_warn_pct, None,
                        f"{pct:.1f} % ineffective session attempts (408/5xx/no response: {isa:.0f} of {total:.0f}) for "
                        f"{_what(st, subj)} in {s.error_window_s:.0f} s; last {c.final_status or 'no response'}",
                        k.ev, "critical" if pct >= s.error_critical_pct else "warning")

    def to_state(self) -> Any:
        return dump_table(self.keys)

    def load(self, state: Any) -> None:
        self.keys = load_table(state)


class LongPdd(Detector):
    name = "long_pdd"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        self.width = bucket_width(eng.s.pdd_window_s)
        self.keys: OrderedDict[str, Keyed] = OrderedDict()
        """subject -> window [long PDDs, PDDs, sum of PDD ms]."""

    def on_call_event(self, ev: int, c: Call, m: SipMessage | None, eng: AnomalyEngine) -> None:
        if ev == PROVISIONAL or ((ev == ANSWER or ev == FINAL) and c.prov_ts is None):
            pdd = c.pdd_ms
        else:
            return
        if pdd is None:
            return
        s = self.s
        ts = c.invite_ts + pdd / 1000.0
        b = int(ts // self.width)
        slow = 1 if pdd > s.pdd_threshold_ms else 0
        for key in c.keys:
            k = touch(self.keys, key, lambda: Keyed(3), s.max_keys)
            k.win.add(b, 0, slow)
            k.win.add(b, 1, 1)
            k.win.add(b, 2, pdd)
            n_slow, n, total_ms = k.win.expire(b, BUCKETS)
            if slow:
                add_evidence(k.ev, c.call_id, s.evidence_max)
            if n < s.pdd_min_calls or not slow:
                continue
            share = n_slow / n
            if share >= s.pdd_slow_ratio:
                st, subj = split(key)
                sev = "critical" if share >= min(1.0, s.pdd_slow_ratio * 1.8) else "warning"
                eng.hit(self.name, st, subj, ts, s.pdd_window_s, 100.0 * share, 100.0 * s.pdd_slow_ratio, None,
                        f"{n_slow:.0f} of {n:.0f} calls of {_what(st, subj)} had PDD > {s.pdd_threshold_ms:.0f} ms "
                        f"in {s.pdd_window_s:.0f} s (mean {total_ms / n:.0f} ms)", k.ev, sev)

    def to_state(self) -> Any:
        return dump_table(self.keys)

    def load(self, state: Any) -> None:
        self.keys = load_table(state)
