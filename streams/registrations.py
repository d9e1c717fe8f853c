"""REGISTER chains -> one :class:`~sipscope.records.Registration` each. Pure, event-time driven.

A chain is keyed by Call-ID (a UA keeps one Call-ID for all its REGISTERs to a registrar, raising the
CSeq each time):

* it starts at a REGISTER (retransmissions and duplicate captures, see :mod:`streams.observations`, are
  not attempts; the same REGISTER relayed by a proxy - same CSeq - is one attempt);
* a 401/407 keeps it open for the retry: the next REGISTER with the same Call-ID, the same address of
  record and a higher CSeq within ``auth_retry_wait_s`` joins it (``challenges`` and ``attempts``
  count them). A REGISTER for another AOR, or coming after the chain closed, starts a new chain;
* any other final response closes it: immediately when the response is the one delivered to the UA
  (``dst_ip`` = the first REGISTER's source), else after ``final_wait_s`` or when the UA-facing copy
  of it passes through a proxy (whose code wins);
* no final response within ``register_timeout_s`` (Timer F) of the last REGISTER closes it as
  ``timeout``; so does the end of a capture with a REGISTER still unanswered;
* a response with a higher CSeq than the chain's last REGISTER (same AOR) means the capture missed the
  retry: it counts as that attempt.

Outcomes: :mod:`streams.outcomes`. RRD (RFC 6076 4.1) = first REGISTER to the final 2xx, challenge
round included, successful chains only. ``expires`` = granted (the 2xx's Expires / Contact expires),
else the request's.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from sipscope.records import Registration, SipMessage, stable_id
from sipscope.settings import CorrelationSettings
from streams import outcomes
from streams.observations import NEW, classify, payload_hash
from streams.timers import INF, Timers

WAITING = "waiting"          # a REGISTER is out, no final yet
CHALLENGED = "challenged"    # last response was 401/407: waiting for the retry
FINAL = "final"              # final seen on an inner hop; waiting for the UA-facing copy


class RegState(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False):
    """One open REGISTER chain."""

    call_id: str
    start_ts: float
    end_ts: float
    last_req_ts: float
    cseq: int
    phase: str = WAITING
    aor: str | None = None
    user: str | None = None
    user_e164: str | None = None
    contact: str | None = None
    expires_req: int | None = None
    user_agent: str | None = None
    auth_user: str | None = None
    src_ip: str | None = None
    src_port: int | None = None
    dst_ip: str | None = None
    challenges: int = 0
    attempts: int = 1
    final_status: int | None = None
    final_ts: float | None = None
    final_to_ua: bool = False
    expires_granted: int | None = None
    seen: dict[int, list[float | str]] = {}

    def to_state(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RegState:
        return msgspec.convert(state, cls, strict=False)


def _aor(msg: SipMessage) -> str | None:
    if msg.to_user and msg.to_host:
        return f"{msg.to_user}@{msg.to_host}"
    return msg.to_user or msg.to_host


class RegistrationTracker:
    """Same driving API as :class:`streams.dialogs.CallTracker`: ``feed``, ``advance``, ``flush_all``."""

    def __init__(self, settings: CorrelationSettings | None = None, *, track_changes: bool = False) -> None:
        cfg = settings if settings is not None else CorrelationSettings()
        self.cfg = cfg
        self._regs: dict[str, RegState] = {}
        self._timers = Timers()
        self._last_cseq: dict[str, tuple[float, int]] = {}
        self._last_order: deque[tuple[float, str]] = deque()
        self._changes: set[str] | None = set() if track_changes else None
        self.watermark = -INF
        self.stats = {"messages": 0, "ignored": 0, "stale": 0, "opened": 0, "closed": 0}

    def __len__(self) -> int:
        return len(self._regs)

    def feed(self, msg: SipMessage) -> list[Registration]:
        ts = msg.ts
        out = self.advance(ts) if ts >= self._timers.next_due() else []
        if ts > self.watermark:
            self.watermark = ts
        self.stats["messages"] += 1
        if msg.cseq_method != "REGISTER":
            self.stats["ignored"] += 1
            return out
        cid = msg.call_id
        reg = self._regs.get(cid)
        if msg.is_request:
            if reg is not None:
                if classify(reg.seen, payload_hash(msg.raw), ts, msg.node, self.cfg.dedup_window_s,
                            self.cfg.dedup_same_node_window_s) != NEW:
                    reg.end_ts = max(reg.end_ts, ts)
                    return out
                if msg.cseq_num <= reg.cseq:
                    reg.end_ts = max(reg.end_ts, ts)  # the same REGISTER relayed by a proxy
                    return out
                if reg.phase == FINAL or _aor(msg) != reg.aor:
                    out.append(self._close(reg, None, ts))
                    reg = None
                else:
                    self._retry(reg, msg)
            if reg is None:
                last = self._last_cseq.get(cid)
                if last is not None and msg.cseq_num <= last[1]:
                    self.stats["stale"] += 1
                    return out
                reg = self._open(msg)
        else:
            if reg is not None and msg.cseq_num > reg.cseq and reg.phase != FINAL and _aor(msg) == reg.aor:
                self._retry(reg, msg, seen_request=False)
            if reg is None or msg.cseq_num != reg.cseq:
                self.stats["ignored"] += 1
                return out
            if classify(reg.seen, payload_hash(msg.raw), ts, msg.node, self.cfg.dedup_window_s,
                        self.cfg.dedup_same_node_window_s) != NEW:
                reg.end_ts = max(reg.end_ts, ts)
                return out
            reg.end_ts = max(reg.end_ts, ts)
            closed = self._on_response(reg, msg)
            if closed is not None:
                out.append(closed)
                return out
        if self._changes is not None:
            self._changes.add(cid)
        self._timers.schedule(cid, self._deadline(reg))
        return out

    def advance(self, now: float) -> list[Registration]:
        if now > self.watermark:
            self.watermark = now
        out: list[Registration] = []
        if self._timers.next_due() > now:
            return out
        for cid in self._timers.pop_due(now):
            reg = self._regs.get(cid)
            if reg is None:
                continue
            if self._deadline(reg) <= now:
                out.append(self._close(reg, None, now))
            else:
                self._timers.schedule(cid, self._deadline(reg))
        limit = now - self.cfg.closed_memory_s
        order = self._last_order
        while order and order[0][0] < limit:
            ts, cid = order.popleft()
            entry = self._last_cseq.get(cid)
            if entry is not None and entry[0] == ts:
                del self._last_cseq[cid]
        return out

    def flush_all(self, reason: str = "capture_end", now: float | None = None) -> list[Registration]:
        now = self.watermark if now is None else now
        out = self.advance(now) if now > -INF else []
        for reg in sorted(self._regs.values(), key=lambda r: (r.start_ts, r.call_id)):
            out.append(self._close(reg, reason, now))
        self._timers.clear()
        return out

    def take_changes(self) -> set[str]:
        if self._changes is None:
            raise RuntimeError("RegistrationTracker(track_changes=True) is needed for take_changes()")
        changed, self._changes = self._changes, set()
        return changed

    def export_chain(self, call_id: str) -> dict[str, Any] | None:
        reg = self._regs.get(call_id)
        return None if reg is None else reg.to_state()

    def live_chain(self, call_id: str) -> RegState | None:
        """The state object of one open chain (see :meth:`streams.dialogs.CallTracker.live_call`)."""
        return self._regs.get(call_id)

    def import_chain(self, state: dict[str, Any] | RegState) -> None:
        reg = state if isinstance(state, RegState) else RegState.from_state(state)
        self._regs[reg.call_id] = reg
        if reg.end_ts > self.watermark:
            self.watermark = reg.end_ts
        self._timers.schedule(reg.call_id, self._deadline(reg))

    # -- internals ------------------------------------------------------------------------------------

    def _open(self, msg: SipMessage) -> RegState:
        ts = msg.ts
        reg = RegState(
            call_id=msg.call_id, start_ts=ts, end_ts=ts, last_req_ts=ts, cseq=msg.cseq_num,
            aor=_aor(msg), user=msg.to_user, user_e164=msg.to_user_e164, contact=msg.contact,
            expires_req=msg.expires, user_agent=msg.user_agent, auth_user=msg.auth_user,
            src_ip=msg.src_ip, src_port=msg.src_port, dst_ip=msg.dst_ip,
            seen={payload_hash(msg.raw): [ts, msg.node]},
        )
        self._regs[reg.call_id] = reg
        self.stats["opened"] += 1
        return reg

    def _retry(self, reg: RegState, msg: SipMessage, seen_request: bool = True) -> None:
        """The next REGISTER of the chain; ``seen_request=False``: only its response was captured (a
        response with a higher CSeq on this chain proves the UA sent it)."""
        reg.attempts += 1
        reg.cseq = msg.cseq_num
        reg.last_req_ts = msg.ts
        reg.end_ts = max(reg.end_ts, msg.ts)
        reg.phase = WAITING
        reg.final_status = None
        reg.final_ts = None
        reg.final_to_ua = False
        if not seen_request:
            return
        if msg.auth_user:
            reg.auth_user = msg.auth_user
        if msg.expires is not None:
            reg.expires_req = msg.expires
        if reg.contact is None:
            reg.contact = msg.contact
        if reg.user_agent is None:
            reg.user_agent = msg.user_agent

    def _on_response(self, reg: RegState, msg: SipMessage) -> Registration | None:
        code = msg.status_code or 0
        if code < 200:
            return None
        to_ua = msg.dst_ip == reg.src_ip
        if code in outcomes.CHALLENGE_CODES:
            if reg.phase != CHALLENGED:
                reg.challenges += 1
            reg.phase = CHALLENGED
            reg.final_status, reg.final_ts, reg.final_to_ua = code, msg.ts, to_ua
            return None
        if reg.final_status is None or reg.phase == CHALLENGED or (to_ua and not reg.final_to_ua):
            reg.final_status, reg.final_ts, reg.final_to_ua = code, msg.ts, to_ua
            if 200 <= code < 300:
                reg.expires_granted = msg.expires
        reg.phase = FINAL
        if to_ua:
            return self._close(reg, None, msg.ts)
        return None

    def _deadline(self, reg: RegState) -> float:
        cfg = self.cfg
        if reg.phase == CHALLENGED:
            return (reg.final_ts or reg.end_ts) + cfg.auth_retry_wait_s
        if reg.phase == FINAL:
            return (reg.final_ts or reg.end_ts) + cfg.final_wait_s
        return reg.last_req_ts + cfg.register_timeout_s

    def _close(self, reg: RegState, flush_reason: str | None, now: float) -> Registration:
        cid = reg.call_id
        del self._regs[cid]
        self._timers.cancel(cid)
        self._last_cseq[cid] = (now, reg.cseq)
        self._last_order.append((now, cid))
        self.stats["closed"] += 1
        if self._changes is not None:
            self._changes.add(cid)
        status = reg.final_status if reg.phase != WAITING else None
        outcome = outcomes.registration_outcome(status, reg.expires_granted if reg.expires_granted is not None
                                                else reg.expires_req, reg.phase == CHALLENGED)
        ok = status is not None and 200 <= status < 300
        expires = reg.expires_granted if ok and reg.expires_granted is not None else reg.expires_req
        return Registration(
            id=stable_id(cid, reg.start_ts), call_id=cid, start_ts=reg.start_ts, end_ts=reg.end_ts,
            aor=reg.aor, user=reg.user, user_e164=reg.user_e164, contact=reg.contact, expires=expires,
            user_agent=reg.user_agent, auth_user=reg.auth_user, src_ip=reg.src_ip, src_port=reg.src_port,
            dst_ip=reg.dst_ip, outcome=outcome, final_status=status, challenges=reg.challenges,
            attempts=reg.attempts,
            rrd_ms=round((reg.final_ts - reg.start_ts) * 1000.0, 3) if ok and reg.final_ts is not None else None,
        )
