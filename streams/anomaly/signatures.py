"""Signature detectors: a known scanner's User-Agent, a call to a listed high-risk destination.

``scanner_user_agent`` (subject: source IP)
    A request (not a retransmission) whose User-Agent matches one of ``scanner_patterns`` (regular
    expressions, case-insensitive, searched: ``friendly-scanner`` also matches ``UNfriendly-scanner``).
    Raised when ``scanner_min_hits`` such requests came from one IP within ``scanner_window_s``; the
    description names the User-Agent and the pattern. Always ``warning``: a scan is a precursor, the
    attacks it leads to have their own detectors.

``high_risk_destination`` (subject: the listed prefix)
    An initial INVITE whose callee (Request-URI user in E.164, else To user in E.164, as normalised by the
    capture agent) starts with one of ``high_risk_prefixes`` (longest prefix wins). Raised when
    ``high_risk_min_calls`` attempts to one prefix fall within ``high_risk_window_s``; ``critical`` at
    ``critical_factor`` times that. The description names the number, the source IP and the caller.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sipscope.records import SipMessage
from streams.anomaly.base import Detector, Keyed, bucket_width, dump_table, load_table
from streams.anomaly.calltrack import ATTEMPT, RETRANS, Call
from streams.anomaly.windows import BUCKETS, add_evidence, touch

if TYPE_CHECKING:
    from streams.anomaly.engine import AnomalyEngine

_UA_CACHE_MAX = 4096


class ScannerUserAgent(Detector):
    name = "scanner_user_agent"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        s = eng.s
        self.patterns = [re.compile(p, re.IGNORECASE) for p in s.scanner_patterns]
        self.any = re.compile("|".join(f"(?:{p})" for p in s.scanner_patterns), re.IGNORECASE) if s.scanner_patterns else None
        self.cache: dict[str, str | None] = {}
        self.width = bucket_width(s.scanner_window_s)
        self.keys: OrderedDict[str, Keyed] = OrderedDict()

    def matched(self, ua: str) -> str | None:
        """The pattern a User-Agent matches, or None (cached per distinct User-Agent)."""
        try:
            return self.cache[ua]
        except KeyError:
            pass
        hit = None
        if self.any is not None and self.any.search(ua):
            hit = next(p.pattern for p in self.patterns if p.search(ua))
        if len(self.cache) >= _UA_CACHE_MAX:
            self.cache.clear()
        self.cache[ua] = hit
        return hit

    def on_message(self, m: SipMessage, flag: int, eng: AnomalyEngine) -> None:
        ua = m.user_agent
        if ua is None or not m.is_request or flag == RETRANS:
            return
        pattern = self.matched(ua)
        if pattern is None:
            return
        s = self.s
        ip = m.src_ip
        k = touch(self.keys, ip, Keyed, s.max_keys)
        b = int(m.ts // self.width)
        k.win.add(b)
        n = k.win.expire(b, BUCKETS)[0]
        add_evidence(k.ev, m.call_id, s.evidence_max)
        if n >= s.scanner_min_hits:
            eng.hit(self.name, "ip", ip, m.ts, s.scanner_window_s, n, s.scanner_min_hits, None,
                    f"{n:.0f} request(s) from {ip} with User-Agent {ua!r} (scanner pattern {pattern!r}), "
                    f"last {m.method} to {m.ruri or m.to_user}", k.ev, "warning")

    def to_state(self) -> Any:
        return dump_table(self.keys)

    def load(self, state: Any) -> None:
        self.keys = load_table(state)


class HighRiskDestination(Detector):
    name = "high_risk_destination"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        s = eng.s
        self.prefixes = {p.lstrip("+") for p in s.high_risk_prefixes if p.lstrip("+")}
        self.lengths = sorted({len(p) for p in self.prefixes}, reverse=True)
        self.width = bucket_width(s.high_risk_window_s)
        self.keys: OrderedDict[str, Keyed] = OrderedDict()

    def prefix_of(self, number: str | None) -> str | None:
        """The longest listed prefix of an E.164 number, or None."""
        if not number:
            return None
        for n in self.lengths:
            p = number[:n]
            if len(p) == n and p in self.prefixes:
                return p
        return None

    def on_call_event(self, ev: int, c: Call, m: SipMessage | None, eng: AnomalyEngine) -> None:
        if ev != ATTEMPT or m is None:
            return
        number = m.ruri_user_e164 or m.to_user_e164
        prefix = self.prefix_of(number)
        if prefix is None:
            return
        s = self.s
        k = touch(self.keys, prefix, Keyed, s.max_keys)
        b = int(m.ts // self.width)
        k.win.add(b)
        n = k.win.expire(b, BUCKETS)[0]
        add_evidence(k.ev, m.call_id, s.evidence_max)
        thr = s.high_risk_min_calls
        if n >= thr:
            sev = "critical" if n >= s.critical_factor * thr else "warning"
            eng.hit(self.name, "prefix", prefix, m.ts, s.high_risk_window_s, n, thr, None,
                    f"{n:.0f} call attempt(s) to listed prefix +{prefix} in {s.high_risk_window_s:.0f} s; "
                    f"last to +{number} from {m.src_ip} (caller {m.from_user_e164 or m.from_user})", k.ev, sev)

    def to_state(self) -> Any:
        return dump_table(self.keys)

    def load(self, state: Any) -> None:
        self.keys = load_table(state)
