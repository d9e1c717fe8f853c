"""The anomaly engine: every detector behind one small, deterministic, event-time API.

    eng = AnomalyEngine.from_settings(get_settings())          # or AnomalyEngine(AnomalySettings(), trunk_of=...)
    alerts = eng.feed_message(msg)                             # SipMessage, from sip.messages
    alerts += eng.feed_call(summary)                           # final CallSummary, from sip.calls
    alerts += eng.feed_registration(reg)                       # Registration, from sip.registrations
    alerts += eng.advance(ts)                                  # event time moved on (idle stream, end of file)
    blob = eng.dumps()  ...  eng = AnomalyEngine.loads(blob, settings, trunk_of=...)

Every call returns the :class:`~sipscope.records.Alert` events it caused (``open`` or ``resolved``), to be
published to ``sip.alerts`` keyed ``name|subject``. Time is the records' ``ts`` only: the clock is the
largest event time seen (or given to :meth:`advance`); records a little late are still counted in their
own window bucket. The same records in the same order always give the same alerts and ids.

Per message the work is O(1): a transaction-key lookup (:class:`~streams.anomaly.calltrack.InviteTracker`),
then the detectors that care. Housekeeping (timeouts, resolutions) runs at most once per event-time second,
and the per-minute evaluations once per minute. Every table is capped (``max_keys``,
``max_tracked_messages``, ``max_tracked_calls``).

The detectors, their definitions and thresholds are documented in their modules:
:mod:`~streams.anomaly.signatures` (``scanner_user_agent``, ``high_risk_destination``),
:mod:`~streams.anomaly.scans` (``registration_bruteforce``, ``extension_enumeration``),
:mod:`~streams.anomaly.volume` (``invite_flood``, ``retransmission_storm``, ``traffic_collapse``),
:mod:`~streams.anomaly.quality` (``asr_drop``, ``error_spike``, ``long_pdd``),
:mod:`~streams.anomaly.fraud` (``short_call_burst``). The alert life cycle (cool-down, resolution) is in
:mod:`~streams.anomaly.alerts`; baselines in :mod:`streams.baselines`.

Sharding: detectors key on source/destination IP, trunk, number or prefix, while a response is matched to
its request by Call-ID and travels the other way. So one engine must see every message: run it in one
consumer of all partitions of ``sip.messages`` (and ``sip.calls``), not once per partition; engines that
each saw a slice of an IP's traffic would miss attacks spread over partitions, and a repartition by source
IP would separate requests from their responses. One engine does well over 100,000 messages/s per core
(``bench/bench_anomaly.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from sipscope.records import Alert, CallSummary, Registration, SipMessage
from sipscope.settings import AnomalySettings, Settings
from streams.anomaly.alerts import AlertBook
from streams.anomaly.calltrack import DUP, RETRANS, InviteTracker
from streams.anomaly.fraud import ShortCallBurst
from streams.anomaly.quality import AsrDrop, ErrorSpike, LongPdd
from streams.anomaly.scans import ExtensionEnumeration, RegistrationBruteforce
from streams.anomaly.signatures import HighRiskDestination, ScannerUserAgent
from streams.anomaly.volume import InviteFlood, RetransmissionStorm, TrafficCollapse
from streams.baselines import Baselines

DETECTORS = {d.name: d for d in (
    ScannerUserAgent, RegistrationBruteforce, ExtensionEnumeration, InviteFlood, AsrDrop, ErrorSpike,
    ShortCallBurst, HighRiskDestination, RetransmissionStorm, LongPdd, TrafficCollapse,
)}
"""Detector classes by their stable alert name."""

STATE_VERSION = 1
MAX_MINUTE_STEPS = 1440
"""After a gap in event time, at most this many minute ends are evaluated one by one (then the last)."""
_TRUNK_CACHE_MAX = 100_000


def _overrides(det: Any, hook: str) -> bool:
    from streams.anomaly.base import Detector

    return getattr(type(det), hook, None) is not getattr(Detector, hook, None)


class AnomalyEngine:
    """Runs the configured detectors over SIP messages, call summaries and registrations."""

    def __init__(self, settings: AnomalySettings | None = None, *, trunk_of: Callable[[str], str | None] | None = None,
                 dup_window_s: float = 0.5, same_node_window_s: float = 0.05) -> None:
        self.s = s = settings or AnomalySettings()
        self._trunk_lookup = trunk_of
        self._trunk_cache: dict[str, str | None] = {}
        self.book = AlertBook(s.cooldown_s, s.resolve_quiet_s, s.baseline_max_freeze_min * 60.0)
        self.tracker = InviteTracker(self._call_keys, ttl_s=32.0, dup_window_s=dup_window_s,
                                   same_node_window_s=same_node_window_s, invite_timeout_s=s.invite_timeout_s,
                                   max_call_s=s.max_call_s, max_messages=s.max_tracked_messages,
                                   max_calls=s.max_tracked_calls)
        unknown = [n for n in s.detectors if n not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown detectors {unknown}; known: {sorted(DETECTORS)}")
        self.detectors = [DETECTORS[n](self) for n in s.detectors]
        self._on_message = [d.on_message for d in self.detectors if _overrides(d, "on_message")]
        self._on_call_event = [d.on_call_event for d in self.detectors if _overrides(d, "on_call_event")]
        self._on_call = [d.on_call for d in self.detectors if _overrides(d, "on_call")]
        self._on_registration = [d.on_registration for d in self.detectors if _overrides(d, "on_registration")]
        self._on_minute = [d.on_minute for d in self.detectors if _overrides(d, "on_minute")]
        self.now: float | None = None
        """Event-time clock: the largest record time seen or advanced to."""
        self.minute: int | None = None
        self._next_house = float("-inf")
        self._out: list[Alert] = []
        self.counts = {"messages": 0, "duplicates": 0, "retransmissions": 0, "calls": 0, "registrations": 0,
                       "alerts": 0}
        """Records seen and alert events emitted (for metrics)."""

    @classmethod
    def from_settings(cls, settings: Settings, trunk_of: Callable[[str], str | None] | None = None) -> AnomalyEngine:
        """Engine configured from the whole settings: ``anomaly``, the correlation dedup windows and trunks."""
        corr = getattr(settings, "correlation", None)
        if trunk_of is None and corr is not None and getattr(corr, "trunks", None):
            trunk_of = default_trunk_lookup(settings)
        return cls(settings.anomaly, trunk_of=trunk_of,
                   dup_window_s=getattr(corr, "dedup_window_s", 0.5),
                   same_node_window_s=getattr(corr, "dedup_same_node_window_s", 0.05))

    # -- helpers used by the detectors -----------------------------------------------------------------

    def trunk_of(self, ip: str | None) -> str | None:
        """Trunk name of an IP (alias map), cached; None without a lookup or for unknown addresses."""
        if ip is None or self._trunk_lookup is None:
            return None
        try:
            return self._trunk_cache[ip]
        except KeyError:
            pass
        t = self._trunk_lookup(ip)
        if len(self._trunk_cache) >= _TRUNK_CACHE_MAX:
            self._trunk_cache.clear()
        self._trunk_cache[ip] = t
        return t

    def _call_keys(self, m: SipMessage) -> tuple[str, ...]:
        """Subjects of a call for the quality detectors: its trunks, else its destination IP."""
        src, dst = self.trunk_of(m.src_ip), self.trunk_of(m.dst_ip)
        keys = []
        if src:
            keys.append(f"trunk|{src}")
        if dst:
            if dst != src:
                keys.append(f"trunk|{dst}")
        else:
            keys.append(f"ip|{m.dst_ip}")
        return tuple(keys)

    def new_baselines(self) -> Baselines:
        s = self.s
        return Baselines(s.baseline_halflife_min, s.baseline_warmup_min, seasonal=s.baseline_seasonal,
                         seasonal_warmup_min=s.baseline_seasonal_warmup_min, max_keys=s.max_keys)

    def is_open(self, name: str, subject_type: str, subject: str) -> bool:
        """Whether ``name`` has an open alert for the subject."""
        return f"{name}|{subject_type}|{subject}" in self.book.open

    def frozen(self, name: str, subject_type: str, subject: str) -> bool:
        """Whether the subject's baselines must not learn now (see :meth:`AlertBook.frozen`)."""
        return self.book.frozen(name, subject_type, subject, self.now or 0.0)

    def hit(self, name: str, subject_type: str, subject: str, ts: float, window_s: float, observed: float,
            threshold: float | None, baseline: float | None, description: str, evidence: Sequence[str],
            severity: str) -> None:
        """A detector's condition holds for a subject at ``ts`` (see :class:`~streams.anomaly.alerts.AlertBook`)."""
        before = len(self._out)
        self.book.hit(self._out, name=name, subject_type=subject_type, subject=subject, ts=ts, window_s=window_s,
                      observed=float(observed), threshold=None if threshold is None else float(threshold),
                      baseline=None if baseline is None else float(baseline), description=description,
                      evidence=evidence, severity=severity)
        self.counts["alerts"] += len(self._out) - before

    # -- feeding ---------------------------------------------------------------------------------------

    def feed_message(self, m: SipMessage) -> list[Alert]:
        """One SIP message (any order within a few seconds; duplicates from other capture points ignored)."""
        out = self._out = []
        ts = m.ts
        if self.now is None or ts > self.now:
            self._clock(ts)
        self.counts["messages"] += 1
        flag = self.tracker.classify(m)
        if flag == DUP:
            self.counts["duplicates"] += 1
            return out
        if flag == RETRANS:
            self.counts["retransmissions"] += 1
        for f in self._on_message:
            f(m, flag, self)
        ev = self.tracker.follow(m)
        if ev is not None:
            for f in self._on_call_event:
                f(ev[0], ev[1], m, self)
        return out

    def feed_call(self, c: CallSummary) -> list[Alert]:
        """A call summary (interim ones, ``final=False``, are ignored)."""
        out = self._out = []
        if not c.final:
            return out
        self.counts["calls"] += 1
        if self.now is None or c.end_ts > self.now:
            self._clock(c.end_ts)
        for f in self._on_call:
            f(c, self)
        return out

    def feed_registration(self, r: Registration) -> list[Alert]:
        """A registration summary (REGISTER attacks are judged on the messages, which come first)."""
        out = self._out = []
        self.counts["registrations"] += 1
        if self.now is None or r.end_ts > self.now:
            self._clock(r.end_ts)
        for f in self._on_registration:
            f(r, self)
        return out

    def advance(self, ts: float) -> list[Alert]:
        """Move event time to ``ts``: timeouts, per-minute evaluations and resolutions that are due."""
        out = self._out = []
        if self.now is None or ts > self.now:
            self._clock(ts)
        self._house(self.now if self.now is not None else ts)
        return out

    # -- sipscope analyze (streams/analyze.py ExtraEngine protocol) -------------------------------------

    def on_message(self, msg: SipMessage) -> list[Alert]:
        return self.feed_message(msg)

    def on_record(self, rec: CallSummary | Registration) -> list[Alert]:
        if isinstance(rec, CallSummary):
            return self.feed_call(rec)
        if isinstance(rec, Registration):
            return self.feed_registration(rec)
        return []

    def finish(self, now: float) -> list[Alert]:
        """End of a capture: what is due at ``now`` (alerts still open stay open: the capture says nothing
        about what came after it)."""
        return self.advance(now)

    def _clock(self, ts: float) -> None:
        self.now = ts
        minute = int(ts // 60)
        if self.minute is None:
            self.minute = minute
        elif minute > self.minute:
            self._house(ts)
            first = max(self.minute, minute - MAX_MINUTE_STEPS)
            for mm in range(first, minute):
                for f in self._on_minute:
                    f(mm, self)
            self.minute = minute
            return
        if ts >= self._next_house:
            self._house(ts)

    def _house(self, now: float) -> None:
        self._next_house = now + 1.0
        for ev, c in self.tracker.expire(now):
            for f in self._on_call_event:
                f(ev, c, None, self)
        before = len(self._out)
        self.book.expire(now, self._out)
        self.counts["alerts"] += len(self._out) - before

    # -- state -----------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything the engine knows, as plain dicts/lists/numbers/strings (msgpack/JSON friendly)."""
        return {
            "version": STATE_VERSION,
            "detectors": list(self.s.detectors),
            "now": self.now,
            "minute": self.minute,
            "next_house": None if self._next_house == float("-inf") else self._next_house,
            "counts": dict(self.counts),
            "book": self.book.to_state(),
            "tracker": self.tracker.to_state(),
            "state": {d.name: d.to_state() for d in self.detectors},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: AnomalySettings | None = None, **kwargs: Any) -> AnomalyEngine:
        """An engine continuing from :meth:`to_state` (settings and trunk lookup are given again)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported anomaly state version {state.get('version')!r}")
        eng = cls(settings, **kwargs)
        eng.now, eng.minute = state["now"], state["minute"]
        eng._next_house = float("-inf") if state["next_house"] is None else state["next_house"]
        eng.counts.update(state["counts"])
        eng.book.load(state["book"])
        eng.tracker.load(state["tracker"])
        saved = state["state"]
        for d in eng.detectors:
            if d.name in saved and saved[d.name] is not None:
                d.load(saved[d.name])
        return eng

    def dumps(self) -> bytes:
        """State as msgpack bytes (for a Faust table with a raw value serializer, or a file)."""
        return msgspec.msgpack.encode(self.to_state())

    @classmethod
    def loads(cls, data: bytes, settings: AnomalySettings | None = None, **kwargs: Any) -> AnomalyEngine:
        return cls.from_state(msgspec.msgpack.decode(data), settings, **kwargs)


def default_trunk_lookup(settings: Settings) -> Callable[[str], str | None] | None:
    """``streams.trunks.TrunkMap(settings.correlation.trunks).lookup`` (None when no trunk is configured)."""
    from streams.trunks import TrunkMap

    tm = TrunkMap(settings.correlation.trunks)
    return tm.lookup if tm else None
