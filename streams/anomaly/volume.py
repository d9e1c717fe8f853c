"""Volume detectors: too many INVITEs, too many retransmissions, too few calls in progress.

``invite_flood`` (subjects: source IP; destination trunk)
    Initial INVITEs (no To tag, retransmissions excluded; an auth retry is a new INVITE transaction and
    counts) per source IP and per destination trunk in a sliding ``flood_window_s``. Threshold:
    ``max(floor, flood_factor x baseline)`` where the baseline is the key's EWMA of INVITEs per minute
    scaled to the window. A source IP without a warm baseline is judged on ``flood_ip_floor`` alone; a
    trunk is judged only once its baseline is warm (``flood_trunk_floor`` as floor), since a carrier's
    normal load is unknown before that.

``retransmission_storm`` (subject: the retransmitting source IP)
    Retransmissions (see :mod:`streams.anomaly.calltrack`) and first transmissions per source IP in a
    sliding ``retrans_window_s``. Raised when retransmissions >= ``max(retrans_floor, retrans_factor x
    baseline)`` and they are at least ``retrans_ratio`` of the IP's messages (a big proxy with a normal
    share of UDP retransmissions is not flagged).

``traffic_collapse`` (subjects: ``*`` = all traffic, and each trunk)
    Calls in progress (2xx to an initial INVITE until BYE) per key; at the end of every minute its peak
    is compared with the EWMA of previous minutes' peaks (the moving average). Raised when the average is
    at least ``collapse_min_avg``, the peak is at most ``(1 - collapse_drop_rel) x average`` and at least
    ``collapse_min_drop`` calls below it; ``critical`` at half that threshold or below.
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
from streams.anomaly.calltrack import ANSWER, END, NEW, RETRANS, Call
from streams.anomaly.windows import BUCKETS, add_evidence, touch

if TYPE_CHECKING:
    from streams.anomaly.engine import AnomalyEngine


def _roll(k: Keyed, minute: int, n: float, base, key: str, frozen: bool) -> None:
    """Per-minute count in ``k.extra = [minute, count]``; a finished minute goes into the baseline."""
    roll = k.extra
    if roll is None:
        k.extra = [minute, n]
    elif minute > roll[0]:
        base.observe(key, roll[0], roll[1], frozen)
        roll[0], roll[1] = minute, n
    else:
        roll[1] += n


class InviteFlood(Detector):
    name = "invite_flood"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        self.width = bucket_width(eng.s.flood_window_s)
        self.keys: OrderedDict[str, Keyed] = OrderedDict()
        self.base = eng.new_baselines()

    def on_message(self, m: SipMessage, flag: int, eng: AnomalyEngine) -> None:
        if flag != NEW or m.method != "INVITE" or m.to_tag or not m.is_request:
            return
        s = self.s
        self._count("ip", m.src_ip, s.flood_ip_floor, False, m, eng)
        trunk = eng.trunk_of(m.dst_ip)
        if trunk:
            self._count("trunk", trunk, s.flood_trunk_floor, True, m, eng)

    def _count(self, st: str, subj: str, floor: int, need_warm: bool, m: SipMessage, eng: AnomalyEngine) -> None:
        s = self.s
        key = f"{st}|{subj}"
        k = touch(self.keys, key, Keyed, s.max_keys)
        minute = int(m.ts // 60)
        frozen = k.extra is not None and minute > k.extra[0] and eng.frozen(self.name, st, subj)
        _roll(k, minute, 1, self.base, key, frozen)
        b = int(m.ts // self.width)
        k.win.add(b)
        n = k.win.expire(b, BUCKETS)[0]
        add_evidence(k.ev, m.call_id, s.evidence_max)
        per_min = self.base.expected(key, minute)
        if per_min is None:
            if need_warm:
                return
            base, thr = None, float(floor)
        else:
            base = per_min * s.flood_window_s / 60.0
            thr = max(float(floor), s.flood_factor * base)
        if n >= thr:
            sev = "critical" if n >= s.critical_factor * thr else "warning"
            what = f"from {subj}" if st == "ip" else f"to trunk {subj}"
            eng.hit(self.name, st, subj, m.ts, s.flood_window_s, n, thr, base,
                    f"{n:.0f} initial INVITEs {what} in {s.flood_window_s:.0f} s (threshold {thr:.0f}"
                    + (f", baseline {base:.1f})" if base is not None else ", no baseline yet)"), k.ev, sev)

    def to_state(self) -> Any:
        return {"keys": dump_table(self.keys), "base": self.base.to_state()}

    def load(self, state: Any) -> None:
        self.keys = load_table(state["keys"])
        self.base.load(state["base"])


class RetransmissionStorm(Detector):
    name = "retransmission_storm"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        self.width = bucket_width(eng.s.retrans_window_s)
        self.keys: OrderedDict[str, Keyed] = OrderedDict()
        self.base = eng.new_baselines()

    def on_message(self, m: SipMessage, flag: int, eng: AnomalyEngine) -> None:
        s = self.s
        ip = m.src_ip
        k = touch(self.keys, ip, lambda: Keyed(2), s.max_keys)
        b = int(m.ts // self.width)
        retrans = flag == RETRANS
        k.win.add(b, 0 if retrans else 1)
        n, first = k.win.expire(b, BUCKETS)
        if not retrans:
            return
        minute = int(m.ts // 60)
        frozen = k.extra is not None and minute > k.extra[0] and eng.frozen(self.name, "ip", ip)
        _roll(k, minute, 1, self.base, ip, frozen)
        add_evidence(k.ev, m.call_id, s.evidence_max)
        per_min = self.base.expected(ip, minute)
        base = None if per_min is None else per_min * s.retrans_window_s / 60.0
        thr = float(s.retrans_floor) if base is None else max(float(s.retrans_floor), s.retrans_factor * base)
        share = n / (n + first)
        if n >= thr and share >= s.retrans_ratio:
            sev = "critical" if n >= s.critical_factor * thr else "warning"
            eng.hit(self.name, "ip", ip, m.ts, s.retrans_window_s, n, thr, base,
                    f"{n:.0f} retransmissions from {ip} in {s.retrans_window_s:.0f} s ({100 * share:.0f} % of its "
                    f"messages), last {m.method or m.status_code} to {m.dst_ip}", k.ev, sev)

    def to_state(self) -> Any:
        return {"keys": dump_table(self.keys), "base": self.base.to_state()}

    def load(self, state: Any) -> None:
        self.keys = load_table(state["keys"])
        self.base.load(state["base"])


class TrafficCollapse(Detector):
    name = "traffic_collapse"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        self.keys: dict[str, list] = {}
        """key -> [in progress now, peak this minute, example Call-IDs]."""
        self.base = eng.new_baselines()

    @staticmethod
    def _keys(c: Call) -> list[str]:
        return ["trunk|*"] + [k for k in c.keys if k.startswith("trunk|")]

    def on_call_event(self, ev: int, c: Call, m: SipMessage | None, eng: AnomalyEngine) -> None:
        if ev == ANSWER:
            for key in self._keys(c):
                k = self.keys.get(key)
                if k is None:
                    k = self.keys[key] = [0, 0, []]
                k[0] += 1
                k[1] = max(k[1], k[0])
                add_evidence(k[2], c.call_id, self.s.evidence_max)
        elif ev == END and c.answer_ts is not None:
            for key in self._keys(c):
                k = self.keys.get(key)
                if k is not None and k[0] > 0:
                    k[0] -= 1

    def on_minute(self, minute: int, eng: AnomalyEngine) -> None:
        s = self.s
        ts = (minute + 1) * 60.0
        for key, k in self.keys.items():
            peak = k[1]
            st, subj = split(key)
            base = self.base.expected(key, minute)
            if base is not None and base >= s.collapse_min_avg:
                thr = base * (1.0 - s.collapse_drop_rel)
                if peak <= thr and base - peak >= s.collapse_min_drop:
                    sev = "critical" if peak <= thr / 2 else "warning"
                    what = "all traffic" if subj == "*" else f"trunk {subj}"
                    eng.hit(self.name, st, subj, ts, 60.0, peak, thr, base,
                            f"peak concurrent calls of {what} fell to {peak} in the minute, moving average "
                            f"{base:.1f} (threshold {thr:.1f})", k[2], sev)
            self.base.observe(key, minute, peak, eng.frozen(self.name, st, subj))
            k[1] = k[0]

    def to_state(self) -> Any:
        return {"keys": [[k, v] for k, v in self.keys.items()], "base": self.base.to_state()}

    def load(self, state: Any) -> None:
        self.keys = {k: list(v) for k, v in state["keys"]}
        self.base.load(state["base"])
