"""Carrier KPIs per minute and scope (topic ``sip.stats``): what is counted, when, and how.

    rollup = KpiRollup.from_settings(get_settings())
    rollup.add_message(msg)          # SipMessage  (sip.messages)
    rollup.add_call(summary)         # CallSummary (sip.calls; interim ones are ignored)
    rollup.add_registration(reg)     # Registration (sip.registrations)
    rows = rollup.close_until(ts)    # StatsRow of the minutes that are due, and revisions
    rows = rollup.flush()            # everything still held (end of a capture, shutdown)

Rows
    One :class:`~sipscope.records.StatsRow` per event-time minute (``ts`` = start of the UTC minute) and
    per scope/key: ``all``/``*``, ``trunk``/name (a call counts for its ``src_trunk`` and its
    ``dst_trunk``, once if they are equal), ``src``/IP and ``dst``/IP. Beyond ``max_keys_per_minute``
    keys of one scope in one minute, further keys are folded into the key ``~other``. A row is written
    only when something happened in it (or calls were in progress). ``id = stable_id(minute_start, scope,
    key)`` (``minute_start`` as integer epoch seconds): a revision of a row has the same id, so
    Elasticsearch keeps the newest.

Time: when each record counts
    * Calls count in the minute of their **start** (``start_ts``, the first INVITE, RFC 6076 t1), for
      every call field: attempts, outcomes, the ratios, PDD and ACD. Their summary arrives when the call
      is over, so a minute is first emitted ``lateness_s`` after its end and then kept ``revise_s`` more:
      a summary that arrives later (a long answered call) updates the row and it is re-emitted (at most
      once per ``revise_interval_s``). Records older than that are counted in ``late`` and dropped.
    * Registrations count in the minute of their first REGISTER (``start_ts``).
    * Messages count in the minute of their capture time.
    * Concurrent calls are followed in real time from the messages (a 2xx to an initial INVITE starts a
      call in progress, its BYE ends it; a call with no BYE seen ends at its summary's ``end_ts`` or after
      ``max_call_s``). Only when no message at all is fed (a rollup of ``sip.calls`` alone) are they taken
      from the summaries' ``answer_ts..end_ts``, for minutes not yet emitted.

Counts (per row)
    ``attempts``
        Call legs started in the minute: one per Call-ID, i.e. the initial INVITE; retransmissions,
        re-INVITEs and the retry after a 401/407 are the same attempt (CPS as carriers use it).
    ``cps``
        ``attempts / 60``.
    ``answered``, ``busy``, ``no_answer``, ``cancelled``, ``rejected``, ``failed``
        Attempts by outcome (``streams/outcomes.py``). ``redirected``, ``unauthorized`` and ``incomplete``
        have no column: they are ``attempts`` minus the sum of the six.
    ``concurrent_max``
        Most calls in progress (answered, not yet ended) at any instant of the minute: calls in progress
        at its start plus the running sum of starts (+1) and ends (-1) inside it, ends first on ties.
    ``responses``
        Final responses (>= 200) to INVITE transactions (initial, auth retries and re-INVITEs), by code,
        retransmissions and duplicate captures excluded; keyed by the request's direction (``src`` = the
        caller's IP, ``dst`` = the callee's).
    ``registrations_ok`` / ``registrations_failed``
        REGISTER chains accepted (``ok``, ``unregistered``) / not (``failed``, ``challenged``,
        ``timeout``; the IRA numerator of RFC 6076 4.2, with unanswered challenges).
    ``messages``
        SIP messages seen (retransmissions included, the same packet from a second capture point not),
        keyed by the message's own sender (``src``) and receiver (``dst``).

Ratios (percent, ``None`` when the denominator is 0)
    Let ``D = attempts - incomplete`` (calls whose setup outcome is known; a call we lost sight of says
    nothing about the network) and ``S = D - redirected``.

    ``asr``  Answer Seizure Ratio, ITU-T E.411: ``100 * answered / D``.
    ``ner``  Network Effectiveness Ratio, ITU-T E.425: ``100 * (answered + busy + no_answer + declined) / D``
             where ``declined`` = final 603 (the "terminal rejection" of E.425); ``no_answer`` includes
             487 after ringing and 408/480 as mapped in ``streams/outcomes.py``.
    ``ser``  Session Establishment Ratio, RFC 6076 4.6: ``100 * answered / S`` (INVITEs answered 200 over
             INVITEs less those answered 3xx).
    ``seer`` Session Establishment Effectiveness Ratio, RFC 6076 4.7: ``100 * (answered + final 480, 486,
             600 or 603) / S``.
    ``isa``  Ineffective Session Attempts, RFC 6076 4.8: ``100 * (final 408, 500, 503 or 504, or no
             response at all = outcome failed without final status, Timer B) / D``.
    ``acd_s`` Average Call Duration (E.411's mean holding time of answered calls): mean ``duration_s``
             (RFC 6076 SDT: 200 to BYE) of the answered calls started in the minute.
    ``pdd_p50_ms`` / ``pdd_p95_ms``
             Post-dial delay (``pdd_ms``: first INVITE to first 18x, else to the final response; every
             outcome) of the calls started in the minute; nearest-rank percentiles (the value at rank
             ``ceil(p * n)`` of the sorted values). Above ``pdd_samples`` values per row a deterministic
             sample is kept: the values of the Call-IDs with the smallest CRC-32.

State is plain lists/dicts (:meth:`KpiRollup.to_state` / :meth:`KpiRollup.from_state`, or
:meth:`KpiRollup.dumps` / :meth:`KpiRollup.loads` as msgpack).

One rollup must see every record (a row's id is the same whoever computes it, so two rollups fed one
partition each would overwrite each other's rows in Elasticsearch): run it in one consumer of all
partitions.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from sipscope.records import CallSummary, Registration, SipMessage, StatsRow, stable_id
from sipscope.settings import KpiSettings, Settings
from streams.anomaly.calltrack import ANSWER, DUP, END, NEW, InviteTracker

STATE_VERSION = 1
OTHER = "~other"

# counter slots of a row
(ATT, ANS, BUSY, NOANS, CANC, REJ, FAIL, REDIR, UNAUTH, INCOMP, DECL, SEER, ISA, DUR_N, DUR_SUM, REG_OK, REG_FAIL,
 MSGS) = range(18)
_N = 18
_OUTCOME = {"answered": ANS, "busy": BUSY, "no_answer": NOANS, "cancelled": CANC, "rejected": REJ, "failed": FAIL,
            "redirected": REDIR, "unauthorized": UNAUTH, "incomplete": INCOMP}
_SEER_CODES = frozenset({480, 486, 600, 603})
_ISA_CODES = frozenset({408, 500, 503, 504})
_REG_OK = frozenset({"ok", "unregistered"})
_REG_FAILED = frozenset({"failed", "challenged", "timeout"})


class _Row:
    """Accumulator of one minute and key."""

    __slots__ = ("c", "conc", "ends", "pdd", "responses", "starts")

    def __init__(self) -> None:
        self.c: list[float] = [0] * _N
        self.pdd: list[tuple[int, float]] = []  # heap of (-crc32(call_id), pdd_ms): the smallest hashes
        self.responses: dict[str, int] = {}
        self.starts: list[float] | None = []
        self.ends: list[float] | None = []
        self.conc: int | None = None  # set when the minute is closed

    def to_state(self) -> list:
        return [self.c, [list(p) for p in self.pdd], self.responses, self.starts, self.ends, self.conc]

    @classmethod
    def from_state(cls, s: list) -> _Row:
        r = cls.__new__(cls)
        r.c, r.responses, r.starts, r.ends, r.conc = list(s[0]), dict(s[2]), s[3], s[4], s[5]
        r.pdd = [tuple(p) for p in s[1]]
        return r


def nearest_rank(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the value at rank ``ceil(p * n)`` (1-based) of sorted values."""
    n = len(sorted_values)
    if n == 0:
        return None
    return sorted_values[max(1, math.ceil(p * n)) - 1]


class KpiRollup:
    """Per-minute KPI rows per scope (see the module docstring for every definition)."""

    def __init__(self, settings: KpiSettings | None = None, *, trunk_of: Callable[[str], str | None] | None = None,
                 dup_window_s: float = 0.5, same_node_window_s: float = 0.05) -> None:
        self.s = s = settings or KpiSettings()
        self._trunk_of = trunk_of
        self._scopes = frozenset(s.scopes)
        self.tracker = InviteTracker(self._invite_keys, ttl_s=32.0, dup_window_s=dup_window_s,
                                     same_node_window_s=same_node_window_s, invite_timeout_s=180.0,
                                     max_call_s=s.max_call_s, max_messages=300_000, max_calls=s.max_tracked_calls)
        self.minutes: dict[int, dict[str, _Row]] = {}
        self._nkeys: dict[tuple[int, str], int] = {}
        self.closed_upto: int | None = None
        """Every minute before this one has been emitted at least once."""
        self.horizon: int | None = None
        """Minutes before this one are forgotten; records for them are late."""
        self.carry: dict[str, int] = {}
        """Calls in progress per key at the start of minute ``closed_upto``."""
        self.dirty: dict[tuple[int, str], None] = {}
        self._last_revision: float | None = None
        self.watermark: float | None = None
        self.messages_seen = 0
        self.late = 0
        """Records (or their concurrency) that arrived after their minute was forgotten."""

    @classmethod
    def from_settings(cls, settings: Settings, trunk_of: Callable[[str], str | None] | None = None) -> KpiRollup:
        """Rollup configured from the whole settings: ``kpi``, the correlation trunks and dedup windows."""
        corr = getattr(settings, "correlation", None)
        if trunk_of is None and corr is not None and getattr(corr, "trunks", None):
            from streams.trunks import TrunkMap

            trunk_of = TrunkMap(corr.trunks).lookup
        return cls(settings.kpi, trunk_of=trunk_of, dup_window_s=getattr(corr, "dedup_window_s", 0.5),
                   same_node_window_s=getattr(corr, "dedup_same_node_window_s", 0.05))

    # -- keys ------------------------------------------------------------------------------------------

    def _keys(self, src: str | None, dst: str | None, src_trunk: str | None, dst_trunk: str | None) -> list[str]:
        sc = self._scopes
        keys = ["all|*"] if "all" in sc else []
        if "trunk" in sc:
            if src_trunk:
                keys.append(f"trunk|{src_trunk}")
            if dst_trunk and dst_trunk != src_trunk:
                keys.append(f"trunk|{dst_trunk}")
        if src and "src" in sc:
            keys.append(f"src|{src}")
        if dst and "dst" in sc:
            keys.append(f"dst|{dst}")
        return keys

    def _trunk(self, ip: str | None) -> str | None:
        return self._trunk_of(ip) if (ip and self._trunk_of is not None) else None

    def _invite_keys(self, m: SipMessage) -> tuple[str, ...]:
        return tuple(self._keys(m.src_ip, m.dst_ip, self._trunk(m.src_ip), self._trunk(m.dst_ip)))

    def _row(self, minute: int, key: str) -> _Row:
        rows = self.minutes.get(minute)
        if rows is None:
            rows = self.minutes[minute] = {}
        r = rows.get(key)
        if r is None:
            scope = key.partition("|")[0]
            n = self._nkeys.get((minute, scope), 0)
            if scope != "all" and n >= self.s.max_keys_per_minute:
                key = f"{scope}|{OTHER}"
                r = rows.get(key)
                if r is not None:
                    return self._touched(minute, key, r)
            else:
                self._nkeys[(minute, scope)] = n + 1
            r = rows[key] = _Row()
            if self.closed_upto is not None and minute < self.closed_upto:
                r.starts = r.ends = None
                r.conc = 0
        return self._touched(minute, key, r)

    def _touched(self, minute: int, key: str, r: _Row) -> _Row:
        if self.closed_upto is not None and minute < self.closed_upto:
            self.dirty[(minute, key)] = None
        return r

    def _too_late(self, minute: int) -> bool:
        if self.horizon is not None and minute < self.horizon:
            self.late += 1
            return True
        return False

    # -- input -----------------------------------------------------------------------------------------

    def add_message(self, m: SipMessage) -> None:
        flag = self.tracker.classify(m)
        if flag == DUP:
            return
        self.messages_seen += 1
        minute = int(m.ts // 60)
        if not self._too_late(minute):
            for key in self._keys(m.src_ip, m.dst_ip, self._trunk(m.src_ip), self._trunk(m.dst_ip)):
                self._row(minute, key).c[MSGS] += 1
            st = m.status_code
            if flag == NEW and st is not None and st >= 200 and m.cseq_method == "INVITE" and not m.is_request:
                code = str(st)
                for key in self._keys(m.dst_ip, m.src_ip, self._trunk(m.dst_ip), self._trunk(m.src_ip)):
                    resp = self._row(minute, key).responses
                    resp[code] = resp.get(code, 0) + 1
        ev = self.tracker.follow(m)
        if ev is not None:
            kind, call = ev
            if kind == ANSWER:
                self._conc(call.keys, m.ts, 1)
            elif kind == END:
                self._conc(call.keys, m.ts, -1)

    def add_call(self, c: CallSummary) -> None:
        if not c.final:
            return
        minute = int(c.start_ts // 60)
        keys = self._keys(c.src_ip, c.dst_ip, c.src_trunk, c.dst_trunk)
        if not self._too_late(minute):
            st = c.final_status
            outcome = _OUTCOME.get(c.outcome)
            crc = zlib.crc32(c.call_id.encode())
            cap = self.s.pdd_samples
            for key in keys:
                r = self._row(minute, key)
                cc = r.c
                cc[ATT] += 1
                if outcome is not None:
                    cc[outcome] += 1
                if st == 603 and outcome == REJ:
                    cc[DECL] += 1
                if outcome == ANS or st in _SEER_CODES:
                    cc[SEER] += 1
                if st in _ISA_CODES or (outcome == FAIL and st is None):
                    cc[ISA] += 1
                if outcome == ANS and c.duration_s is not None:
                    cc[DUR_N] += 1
                    cc[DUR_SUM] += c.duration_s
                if c.pdd_ms is not None:
                    if len(r.pdd) < cap:
                        heapq.heappush(r.pdd, (-crc, c.pdd_ms))
                    elif -crc > r.pdd[0][0]:
                        heapq.heapreplace(r.pdd, (-crc, c.pdd_ms))
        if c.answer_ts is None or c.outcome != "answered":
            return
        live = self.tracker.active.pop(c.call_id, None)
        if live is not None:  # answered in the messages, no BYE seen: it ends with its summary
            self._conc(live.keys, max(c.end_ts, live.answer_ts or c.end_ts), -1)
        elif self.messages_seen == 0:
            self._conc(keys, c.answer_ts, 1)
            self._conc(keys, max(c.end_ts, c.answer_ts), -1)

    def add_registration(self, r: Registration) -> None:
        minute = int(r.start_ts // 60)
        if self._too_late(minute):
            return
        slot = REG_OK if r.outcome in _REG_OK else REG_FAIL if r.outcome in _REG_FAILED else None
        if slot is None:
            return
        for key in self._keys(r.src_ip, r.dst_ip, self._trunk(r.src_ip), self._trunk(r.dst_ip)):
            self._row(minute, key).c[slot] += 1

    def _conc(self, keys: Iterable[str], ts: float, delta: int) -> None:
        """A call starts (+1) or ends (-1) being in progress at ``ts``."""
        minute = int(ts // 60)
        if self.closed_upto is None or minute >= self.closed_upto:
            for key in keys:
                r = self._row(minute, key)
                (r.starts if delta > 0 else r.ends).append(ts)
            return
        for key in keys:  # its minute is already out: only the minutes to come see it
            n = self.carry.get(key, 0) + delta
            if n > 0:
                self.carry[key] = n
            else:
                self.carry.pop(key, None)

    # -- output ----------------------------------------------------------------------------------------

    def close_until(self, ts: float) -> list[StatsRow]:
        """Rows of every minute that ended ``lateness_s`` before ``ts`` and was not emitted yet, plus
        revised rows (at most once per ``revise_interval_s``); forgets minutes past ``revise_s``."""
        s = self.s
        if self.watermark is None or ts > self.watermark:
            self.watermark = ts
        for ev, call in self.tracker.expire(ts):
            if ev == END:
                self._conc(call.keys, call.end_ts, -1)
        out: list[StatsRow] = []
        upto = int((ts - s.lateness_s) // 60)
        self._close(upto, out)
        if self._last_revision is None or ts - self._last_revision >= s.revise_interval_s:
            self._last_revision = ts
            self._emit_dirty(out)
        self._forget(int((ts - s.lateness_s - s.revise_s) // 60), out)
        self._cap(out)
        return out

    def flush(self) -> list[StatsRow]:
        """Emit every minute still held (closing them) and every pending revision; forget them all."""
        out: list[StatsRow] = []
        if self.minutes:
            self._close(max(self.minutes) + 1, out)
        self._emit_dirty(out)
        self._forget(self.closed_upto if self.closed_upto is not None else 0, out)
        return out

    def _close(self, upto: int, out: list[StatsRow]) -> None:
        """Close every minute before ``upto`` in order (calls in progress carry from minute to minute)."""
        if self.closed_upto is None:
            if not self.minutes:
                return
            self.closed_upto = min(self.minutes)
        while self.closed_upto < upto:
            m = self.closed_upto
            if m not in self.minutes and not self.carry:
                later = [x for x in self.minutes if x >= m]
                nxt = min(later) if later else upto
                self.closed_upto = min(nxt, upto)
                continue
            self._close_minute(m, out)
            self.closed_upto = m + 1
        if self.horizon is None:
            self.horizon = min(self.minutes) if self.minutes else self.closed_upto

    def _close_minute(self, minute: int, out: list[StatsRow]) -> None:
        rows = self.minutes.setdefault(minute, {})
        for key in self.carry:
            if key not in rows:
                rows[key] = _Row()
        carry: dict[str, int] = {}
        for key, r in rows.items():
            cur = mx = self.carry.get(key, 0)
            events = [(t, -1) for t in (r.ends or ())] + [(t, 1) for t in (r.starts or ())]
            events.sort()
            for _, d in events:
                cur += d
                mx = max(mx, cur)
            r.conc = max(mx, 0)
            r.starts = r.ends = None
            if cur > 0:
                carry[key] = cur
            row = self._stats(minute, key, r)
            if row is not None:
                out.append(row)
            self.dirty.pop((minute, key), None)
        self.carry = carry
        if not any(r.conc or any(r.c) or r.responses for r in rows.values()):
            del self.minutes[minute]

    def _emit_dirty(self, out: list[StatsRow]) -> None:
        for minute, key in self.dirty:
            r = self.minutes.get(minute, {}).get(key)
            if r is not None:
                row = self._stats(minute, key, r)
                if row is not None:
                    out.append(row)
        self.dirty.clear()

    def _forget(self, before: int, out: list[StatsRow]) -> None:
        """Forget the (emitted) minutes before ``before``; their pending revisions are emitted first."""
        if self.closed_upto is not None:
            before = min(before, self.closed_upto)
        if self.horizon is not None and before <= self.horizon:
            return
        for minute in sorted(m for m in self.minutes if m < before):
            self._drop(minute, out)
        for k in [k for k in self._nkeys if k[0] < before]:
            del self._nkeys[k]
        self.horizon = before

    def _drop(self, minute: int, out: list[StatsRow]) -> None:
        rows = self.minutes.pop(minute)
        for key, r in rows.items():
            if (minute, key) in self.dirty:
                del self.dirty[(minute, key)]
                row = self._stats(minute, key, r)
                if row is not None:
                    out.append(row)

    def _cap(self, out: list[StatsRow]) -> None:
        """Keep at most ``max_rows`` rows: forget the oldest emitted minutes first."""
        total = sum(len(r) for r in self.minutes.values())
        while total > self.s.max_rows and self.closed_upto is not None:
            closed = [m for m in self.minutes if m < self.closed_upto]
            if not closed:
                break
            oldest = min(closed)
            total -= len(self.minutes[oldest])
            self._drop(oldest, out)
            self.horizon = max(self.horizon or oldest + 1, oldest + 1)

    @staticmethod
    def _stats(minute: int, key: str, r: _Row) -> StatsRow | None:
        c = r.c
        conc = r.conc or 0
        if not (conc or any(c) or r.responses):
            return None
        scope, _, k = key.partition("|")
        att = int(c[ATT])
        d = att - c[INCOMP]
        sd = d - c[REDIR]
        pdd = sorted(v for _, v in r.pdd)
        start = minute * 60

        def pct(num: float, den: float) -> float | None:
            return 100.0 * num / den if den > 0 else None

        return StatsRow(
            id=stable_id(start, scope, k), ts=float(start), scope=scope, key=k, attempts=att, cps=att / 60.0,
            concurrent_max=conc, answered=int(c[ANS]), busy=int(c[BUSY]), no_answer=int(c[NOANS]),
            cancelled=int(c[CANC]), rejected=int(c[REJ]), failed=int(c[FAIL]),
            asr=pct(c[ANS], d), ner=pct(c[ANS] + c[BUSY] + c[NOANS] + c[DECL], d), ser=pct(c[ANS], sd),
            seer=pct(c[SEER], sd), isa=pct(c[ISA], d),
            acd_s=c[DUR_SUM] / c[DUR_N] if c[DUR_N] else None,
            pdd_p50_ms=nearest_rank(pdd, 0.50), pdd_p95_ms=nearest_rank(pdd, 0.95),
            responses=dict(sorted(r.responses.items())), registrations_ok=int(c[REG_OK]),
            registrations_failed=int(c[REG_FAIL]), messages=int(c[MSGS]),
        )

    # -- sipscope analyze (streams/analyze.py ExtraEngine protocol) -------------------------------------

    def on_message(self, msg: SipMessage) -> list[StatsRow]:
        self.add_message(msg)
        return []

    def on_record(self, rec: CallSummary | Registration) -> list[StatsRow]:
        if isinstance(rec, CallSummary):
            self.add_call(rec)
        elif isinstance(rec, Registration):
            self.add_registration(rec)
        return []

    def finish(self, now: float) -> list[StatsRow]:
        for ev, call in self.tracker.expire(now):
            if ev == END:
                self._conc(call.keys, call.end_ts, -1)
        return self.flush()

    # -- state -----------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "minutes": [[m, [[k, r.to_state()] for k, r in rows.items()]] for m, rows in self.minutes.items()],
            "nkeys": [[m, sc, n] for (m, sc), n in self._nkeys.items()],
            "closed_upto": self.closed_upto, "horizon": self.horizon, "carry": self.carry,
            "dirty": [[m, k] for m, k in self.dirty], "last_revision": self._last_revision,
            "watermark": self.watermark, "messages_seen": self.messages_seen, "late": self.late,
            "tracker": self.tracker.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: KpiSettings | None = None, **kwargs: Any) -> KpiRollup:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported KPI state version {state.get('version')!r}")
        r = cls(settings, **kwargs)
        r.minutes = {m: {k: _Row.from_state(v) for k, v in rows} for m, rows in state["minutes"]}
        r._nkeys = {(m, sc): n for m, sc, n in state["nkeys"]}
        r.closed_upto, r.horizon, r.carry = state["closed_upto"], state["horizon"], dict(state["carry"])
        r.dirty = {(m, k): None for m, k in state["dirty"]}
        r._last_revision, r.watermark = state["last_revision"], state["watermark"]
        r.messages_seen, r.late = state["messages_seen"], state["late"]
        r.tracker.load(state["tracker"])
        return r

    def dumps(self) -> bytes:
        return msgspec.msgpack.encode(self.to_state())

    @classmethod
    def loads(cls, data: bytes, settings: KpiSettings | None = None, **kwargs: Any) -> KpiRollup:
        return cls.from_state(msgspec.msgpack.decode(data), settings, **kwargs)
