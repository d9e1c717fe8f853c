"""Call correlation: SIP messages -> one :class:`~sipscope.records.CallSummary` per call leg (Call-ID).

Pure and deterministic: no I/O, no clock. Time is the messages' capture time (``ts``); timers fire when
a later message (or :meth:`CallTracker.advance`) moves event time past them.

Rules
-----
* One leg = one Call-ID. A proxy's hops share the Call-ID and are the same leg seen at several points:
  they are merged, and every ``ip:port`` is kept in ``hosts`` in order of first appearance.
* A leg starts at an initial INVITE (no To-tag). Messages of a Call-ID with no open leg (OPTIONS,
  SUBSCRIBE, a BYE of a call that started before the capture) are ignored and counted; REGISTER
  transactions belong to :mod:`streams.registrations` even when they share the Call-ID.
* Retransmissions and duplicate captures are recognised by :mod:`streams.observations` and counted in
  ``retransmissions`` / ``duplicates``, never in ``messages``; they never move a timestamp (t1 of RFC
  6076 is the first INVITE).
* An INVITE with a To-tag is a re-INVITE: it never restarts the call. An INVITE without To-tag and with a
  higher CSeq (the retry after 401/407, or after a 3xx) continues the same call as a new transaction;
  responses are matched to the current initial transaction by CSeq and From-tag, so the callee's own
  re-INVITE with a colliding CSeq is not mistaken for it.
* Timestamps are first observations, except that a response delivered *to the request's sender*
  (``dst_ip`` = the first INVITE's / BYE's source) replaces an earlier observation seen deeper in a
  proxy chain: RFC 6076 measures at the originating UA. The final status follows the same rule (a
  proxy may translate the code it relays).
* ``hangup_by``: a CANCEL is the caller's; a BYE is the caller's when its From-tag is the INVITE's
  From-tag (else the callee's; by source address when tags are missing). A BYE after a final failure is
  noise (SIPp sends one) and changes nothing.
* Outcomes and end reasons: :mod:`streams.outcomes`.

Timers (``CorrelationSettings``), each ending in exactly one final summary per leg:

==========================  ============================================================  ================
phase                       closes at                                                     end_reason
==========================  ============================================================  ================
INVITE sent, no response    first INVITE of the transaction + ``no_final_timeout_s`` (B)  timeout_no_final
provisional only (100/18x)  last message + ``proceeding_timeout_s`` (Timer C)             timeout_no_final
CANCEL sent, no final       CANCEL + ``no_final_timeout_s``                               cancel
final failure / 3xx         final + ``final_wait_s`` (the ACK, the upstream copy);        final_response
                            401/407: final + ``auth_retry_wait_s`` (the retry)
answered                    last message + ``answered_timeout_s``                         timeout_no_bye
BYE sent                    last message + ``bye_wait_s`` (its 200, retransmissions)      bye
==========================  ============================================================  ================

Answered calls also yield an interim summary (``final=False``, same ``id``) every
``interim_interval_s``. A closed Call-ID is remembered ``closed_memory_s`` so a straggling copy of its
INVITE does not open a second leg; a new INVITE with a *higher* CSeq after that does start a new one.

State
-----
Per leg, one :class:`~streams.callstate.CallState` (a msgspec Struct: ``to_state()`` /
``from_state()``), small enough for a changelog-backed table (~1.5 KB as JSON): the first INVITE's
identity fields, a dozen timestamps and the payload hashes of the leg's recent distinct messages.
:meth:`CallTracker.export_call` / :meth:`CallTracker.import_call` move one leg in and out (restore =
import every leg, timers are rebuilt); with ``track_changes=True``, :meth:`CallTracker.take_changes`
names the legs whose state changed (including the partner leg whose correlation id was set), so a
worker writes exactly those.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from sipscope.records import CallSummary, SipMessage
from sipscope.settings import CorrelationSettings
from streams import outcomes
from streams.callstate import (
    ANSWERED,
    CALLING,
    CANCELLING,
    ENDING,
    FAILED,
    PROCEEDING,
    CallState,
    live_state,
    summarize,
)
from streams.legs import LegLinker, numbers
from streams.observations import DUPLICATE, classify, payload_hash, prune
from streams.timers import INF, Timers
from streams.trunks import TrunkMap

_SEEN_PRUNE_EVERY = 16
"""Every this many distinct messages, forget payload hashes older than ``_SEEN_KEEP_S``."""
_SEEN_KEEP_S = 40.0
"""Retransmissions stop after 64*T1 = 32 s (timers B, F, H); keeps the per-call state small."""


def _host(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class _HostMemo(dict):
    """``memo[ip, port]`` = :func:`_host` ``(ip, port)``: every message names two addresses and a capture sees
    the same few thousand; a dict hit is cheaper than formatting the string again (146 against 283 ns)."""

    __slots__ = ()

    def __missing__(self, key: tuple[str, int]) -> str:
        if len(self) >= 50_000:
            self.clear()
        h = self[key] = _host(*key)
        return h


_HOSTS = _HostMemo()


class CallTracker:
    """The call correlation engine. Feed it messages in (roughly) capture-time order.

    * :meth:`feed` -> summaries that became final (or interim) up to this message's time;
    * :meth:`advance` -> the same, for event time moving on without a message;
    * :meth:`flush_all` -> close every open leg (end of a capture, or shutdown).
    """

    def __init__(self, settings: CorrelationSettings | None = None, trunks: TrunkMap | None = None, *,
                 track_changes: bool = False) -> None:
        cfg = settings if settings is not None else CorrelationSettings()
        self.cfg = cfg
        self.trunks = trunks if trunks is not None else TrunkMap(cfg.trunks)
        self._calls: dict[str, CallState] = {}
        self._timers = Timers()
        self._closed: dict[str, tuple[float, int]] = {}
        self._closed_order: deque[tuple[float, str]] = deque()
        self._linker = LegLinker(cfg.leg_link_window_s)
        self._changes: set[str] | None = set() if track_changes else None
        self.watermark = -INF
        """Latest event time seen (max ``ts`` fed or advanced to)."""
        self.stats = {"messages": 0, "ignored": 0, "stale": 0, "opened": 0, "closed": 0}
        """Counters: messages fed, ignored (no open leg / REGISTER), stale (copy of a closed leg's
        INVITE), legs opened and closed."""
        self._win = cfg.dedup_window_s
        self._swin = cfg.dedup_same_node_window_s
        self._interim = cfg.interim_interval_s if cfg.interim_interval_s > 0 else 0.0

    # -- public API -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._calls)

    def open_calls(self) -> list[str]:
        return list(self._calls)

    def feed(self, msg: SipMessage) -> list[CallSummary]:
        """Process one message; returns the summaries that closed (or interim ones) up to ``msg.ts``."""
        ts = msg.ts
        out = self.advance(ts) if ts >= self._timers.next_due() else []
        if ts > self.watermark:
            self.watermark = ts
        self.stats["messages"] += 1
        cid = msg.call_id
        if msg.cseq_method == "REGISTER":
            self.stats["ignored"] += 1
            return out
        call = self._calls.get(cid)
        if call is None:
            if not (msg.is_request and msg.method == "INVITE" and msg.to_tag is None):
                self.stats["ignored"] += 1
                return out
            closed = self._closed.get(cid)
            if closed is not None and msg.cseq_num <= closed[1]:
                self.stats["stale"] += 1
                return out
            call = self._open(msg)
        else:
            self._update(call, msg)
        if self._changes is not None:
            self._changes.add(cid)
        self._timers.schedule(cid, self._wake(call))
        return out

    def advance(self, now: float) -> list[CallSummary]:
        """Move event time to ``now``: close the legs whose timer passed, emit due interim summaries."""
        if now > self.watermark:
            self.watermark = now
        out: list[CallSummary] = []
        if self._timers.next_due() > now:
            return out
        for cid in self._timers.pop_due(now):
            call = self._calls.get(cid)
            if call is None:
                continue
            if self._deadline(call) <= now:
                out.append(self._close(call, None, now))
                continue
            if self._interim and call.phase == ANSWERED and call.next_interim <= now:
                out.append(summarize(call, self.trunks, final=False, end_reason="", state=live_state(call), now=now))
                while call.next_interim <= now:
                    call.next_interim += self._interim
            self._timers.schedule(cid, self._wake(call))
        self._forget_closed(now)
        return out

    def flush_all(self, reason: str = "capture_end", now: float | None = None) -> list[CallSummary]:
        """Close every open leg: timers due by ``now`` (default: the watermark) fire normally, the rest
        close with ``end_reason=reason`` unless their end is already known (BYE, CANCEL, final)."""
        now = self.watermark if now is None else now
        out = self.advance(now) if now > -INF else []
        for call in sorted(self._calls.values(), key=lambda c: (c.start_ts, c.call_id)):
            out.append(self._close(call, reason, now))
        self._timers.clear()
        self._linker.clear()
        return out

    def take_changes(self) -> set[str]:
        """Call-IDs whose state changed (or closed) since the last call; needs ``track_changes=True``."""
        if self._changes is None:
            raise RuntimeError("CallTracker(track_changes=True) is needed for take_changes()")
        changed, self._changes = self._changes, set()
        return changed

    def export_call(self, call_id: str) -> dict[str, Any] | None:
        """State of one open leg as a plain dict (None when the leg is closed or unknown)."""
        call = self._calls.get(call_id)
        return None if call is None else call.to_state()

    def live_call(self, call_id: str) -> CallState | None:
        """The state object of one open leg (None when closed or unknown): what :meth:`export_call` returns as a
        dict, without building the dict (the worker encodes it straight into its table entry)."""
        return self._calls.get(call_id)

    def import_call(self, state: dict[str, Any] | CallState) -> None:
        """Put back one leg (worker restart). Its timer is rebuilt from its state."""
        call = state if isinstance(state, CallState) else CallState.from_state(state)
        self._calls[call.call_id] = call
        if call.end_ts > self.watermark:
            self.watermark = call.end_ts
        self._timers.schedule(call.call_id, self._wake(call))

    def snapshot(self) -> dict[str, Any]:
        """Whole tracker state (open legs, closed-Call-ID memory, watermark) as plain data."""
        return {"calls": [c.to_state() for c in self._calls.values()],
                "closed": {k: list(v) for k, v in self._closed.items()},
                "watermark": self.watermark if self.watermark > -INF else None}

    def restore(self, snap: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` into an empty tracker."""
        for st in snap.get("calls", ()):
            self.import_call(st)
        for cid, (ts, cseq) in sorted(snap.get("closed", {}).items(), key=lambda kv: kv[1][0]):
            self._closed[cid] = (ts, cseq)
            self._closed_order.append((ts, cid))
        if snap.get("watermark") is not None and snap["watermark"] > self.watermark:
            self.watermark = snap["watermark"]

    # -- message handling -----------------------------------------------------------------------------

    def _open(self, msg: SipMessage) -> CallState:
        ts = msg.ts
        to_user = msg.to_user
        callee: str | None
        if to_user:
            callee, callee_e164 = to_user, msg.to_user_e164
        else:
            callee, callee_e164 = msg.ruri_user, msg.ruri_user_e164
        sdp = msg.sdp
        # Required fields by keyword, the rest by attribute: msgspec binds 30 keywords ~3x slower.
        call = CallState(call_id=msg.call_id, start_ts=ts, end_ts=ts, caller_ip=msg.src_ip)
        call.from_tag = msg.from_tag
        call.inv_cseq = msg.cseq_num
        call.txn_ts = ts
        call.caller = msg.from_user
        call.caller_e164 = msg.from_user_e164
        call.callee = callee
        call.callee_e164 = callee_e164
        call.ruri = msg.ruri
        call.ruri_user = msg.ruri_user
        call.ruri_user_e164 = msg.ruri_user_e164
        call.pai_user = msg.pai_user
        call.pai_user_e164 = msg.pai_user_e164
        call.diversion_user = msg.diversion_user
        call.diversion_user_e164 = msg.diversion_user_e164
        call.src_ip = msg.src_ip
        call.dst_ip = msg.dst_ip
        call.caller_agent = msg.user_agent
        if sdp is not None and sdp.codecs:
            call.codecs = list(sdp.codecs)
        call.hosts = [_HOSTS[msg.src_ip, msg.src_port], _HOSTS[msg.dst_ip, msg.dst_port]]
        call.nodes = [msg.node]
        call.messages = 1
        call.seen = {payload_hash(msg.raw): [ts, msg.node]}
        self._calls[call.call_id] = call
        self.stats["opened"] += 1
        self._link(call, msg)
        return call

    def _link(self, call: CallState, msg: SipMessage) -> None:
        callers = numbers(msg.from_user_e164 or msg.from_user, msg.pai_user_e164 or msg.pai_user)
        callees = numbers(msg.to_user_e164 or msg.to_user, msg.ruri_user_e164 or msg.ruri_user)
        partner = self._linker.link(call, msg.ts, msg.src_ip, msg.dst_ip, callers, callees)
        if msg.correlation_id:
            self._set_correlation(call, msg.correlation_id)
        elif partner is not None:
            if partner.correlation_id is None:
                partner.correlation_id = partner.call_id
                self._touch(partner.call_id)
            call.correlation_id = partner.correlation_id

    def _set_correlation(self, call: CallState, corr: str) -> None:
        call.correlation_id = corr
        partner = self._calls.get(corr)
        if partner is not None and partner is not call and partner.correlation_id is None:
            partner.correlation_id = partner.call_id
            self._touch(partner.call_id)

    def _touch(self, call_id: str) -> None:
        if self._changes is not None:
            self._changes.add(call_id)

    def _update(self, call: CallState, msg: SipMessage) -> None:
        ts = msg.ts
        if ts > call.end_ts:
            call.end_ts = ts
        node = msg.node
        seen = call.seen
        # classify's first branch inlined (it runs for every message): an unknown hash is a new message
        h = payload_hash(msg.raw)
        if h in seen:  # a copy or a retransmission
            if classify(seen, h, ts, node, self._win, self._swin) == DUPLICATE:
                call.duplicates += 1
                if node not in call.nodes:
                    call.nodes.append(node)
            else:
                call.retransmissions += 1
            return
        seen[h] = [ts, node]
        call.messages += 1
        if call.messages % _SEEN_PRUNE_EVERY == 0:
            prune(seen, ts - _SEEN_KEEP_S)
        hosts = call.hosts
        src = _HOSTS[msg.src_ip, msg.src_port]
        if src not in hosts:
            hosts.append(src)
        dst = _HOSTS[msg.dst_ip, msg.dst_port]
        if dst not in hosts:
            hosts.append(dst)
        if node not in call.nodes:
            call.nodes.append(node)
        if msg.correlation_id and call.correlation_id is None:
            self._set_correlation(call, msg.correlation_id)
        if msg.is_request:
            self._on_request(call, msg)
        else:
            self._on_response(call, msg)

    def _tag_ok(self, call: CallState, tag: str | None) -> bool:
        return tag is None or call.from_tag is None or tag == call.from_tag

    def _on_request(self, call: CallState, msg: SipMessage) -> None:
        method = msg.method
        ts = msg.ts
        if method == "INVITE":
            if msg.to_tag is None and call.answer_ts is None and msg.cseq_num > call.inv_cseq:
                self._new_attempt(call, msg)
            elif not call.codecs and msg.sdp is not None and msg.sdp.codecs and msg.to_tag is None:
                call.codecs = list(msg.sdp.codecs)
        elif method == "ACK":
            if msg.cseq_num == call.inv_cseq and self._tag_ok(call, msg.from_tag):
                if call.ack_ts is None:
                    call.ack_ts = ts
                if call.answer_ts is not None:
                    call.confirmed = True
                    sdp = msg.sdp
                    if sdp is not None and sdp.codecs and call.codecs and not call.answer_codecs:
                        call.answer_codecs = list(sdp.codecs)
        elif method == "CANCEL":
            if call.answer_ts is None and call.final_status is None:
                if call.cancel_ts is None:
                    call.cancel_ts = ts
                    call.hangup_by = "caller"
                if call.q850_cause is None and msg.q850_cause is not None:
                    call.q850_cause = msg.q850_cause
                if call.phase in (CALLING, PROCEEDING):
                    call.phase = CANCELLING
        elif method == "BYE":
            if call.bye_ts is None:
                call.bye_ts = ts
                call.bye_cseq = msg.cseq_num
                call.bye_src_ip = msg.src_ip
                if call.answer_ts is not None or call.final_status is None:
                    tag = msg.from_tag
                    if tag is not None and call.from_tag is not None:
                        call.hangup_by = "caller" if tag == call.from_tag else "callee"
                    else:
                        call.hangup_by = "caller" if msg.src_ip == call.caller_ip else "callee"
                    if call.answer_ts is None:
                        call.early_bye = True
                    call.phase = ENDING
                    if call.q850_cause is None and msg.q850_cause is not None:
                        call.q850_cause = msg.q850_cause

    def _new_attempt(self, call: CallState, msg: SipMessage) -> None:
        """A new initial INVITE (higher CSeq, no To-tag) after 401/407 or 3xx: same call, new transaction."""
        call.inv_cseq = msg.cseq_num
        call.txn_ts = msg.ts
        call.phase = CALLING
        call.got_response = False
        call.final_status = None
        call.final_reason = None
        call.final_ts = None
        call.final_to_caller = False
        call.ack_ts = None
        if call.cancel_ts is not None:
            call.cancel_ts = None
            call.hangup_by = None
        if not call.codecs and msg.sdp is not None and msg.sdp.codecs:
            call.codecs = list(msg.sdp.codecs)

    def _on_response(self, call: CallState, msg: SipMessage) -> None:
        cm = msg.cseq_method
        code = msg.status_code or 0
        ts = msg.ts
        if cm == "INVITE":
            if msg.cseq_num != call.inv_cseq or not self._tag_ok(call, msg.from_tag):
                return  # a re-INVITE's response, or a stale transaction's
            to_caller = msg.dst_ip == call.caller_ip
            call.got_response = True
            sdp = msg.sdp
            if code < 200:
                if code == 100:
                    if call.trying_agent is None:
                        call.trying_agent = msg.user_agent
                else:
                    if call.prov_ts is None or (to_caller and not call.prov_to_caller):
                        call.prov_ts, call.prov_to_caller = ts, to_caller
                    if (code == 180 or code == 183) and (
                            call.ringing_ts is None or (to_caller and not call.ringing_to_caller)):
                        call.ringing_ts, call.ringing_to_caller = ts, to_caller
                    if call.callee_agent is None:
                        call.callee_agent = msg.user_agent
                    if sdp is not None and sdp.codecs and call.codecs and not call.answer_codecs:
                        call.answer_codecs = list(sdp.codecs)
                if call.phase == CALLING:
                    call.phase = PROCEEDING
            elif code < 300:
                if call.answer_ts is None or (to_caller and not call.answer_to_caller):
                    call.answer_ts, call.answer_to_caller = ts, to_caller
                    call.final_ts, call.final_to_caller = ts, to_caller
                    call.final_status, call.final_reason = code, msg.reason
                    if self._interim and not call.next_interim:
                        call.next_interim = ts + self._interim
                if call.callee_agent is None:
                    call.callee_agent = msg.user_agent
                if sdp is not None and sdp.codecs:
                    if not call.codecs:
                        call.codecs = list(sdp.codecs)  # late offer: the 200 carries the offer
                    elif not call.answer_codecs:
                        call.answer_codecs = list(sdp.codecs)
                if call.phase != ENDING:
                    call.phase = ANSWERED
            else:
                if call.answer_ts is not None:
                    return  # a failure crossing a 2xx (forking): the 2xx made the dialog
                if call.final_status is None or (to_caller and not call.final_to_caller):
                    call.final_status, call.final_reason = code, msg.reason
                    call.final_ts, call.final_to_caller = ts, to_caller
                if call.q850_cause is None and msg.q850_cause is not None:
                    call.q850_cause = msg.q850_cause
                if call.callee_agent is None:
                    call.callee_agent = msg.user_agent
                if call.phase != ENDING:
                    call.phase = FAILED
        elif cm == "BYE":
            if msg.cseq_num == call.bye_cseq and 200 <= code < 300:
                to_sender = msg.dst_ip == call.bye_src_ip
                if call.bye_ok_ts is None or (to_sender and not call.bye_ok_to_sender):
                    call.bye_ok_ts, call.bye_ok_to_sender = ts, to_sender

    # -- timers ---------------------------------------------------------------------------------------

    def _deadline(self, call: CallState) -> float:
        """When the leg closes unless a message comes (the table in the module docstring)."""
        cfg = self.cfg
        phase = call.phase
        if phase == ANSWERED:
            return call.end_ts + cfg.answered_timeout_s
        if phase == ENDING:
            return call.end_ts + cfg.bye_wait_s
        if phase == FAILED:
            wait = cfg.auth_retry_wait_s if call.final_status in outcomes.CHALLENGE_CODES else cfg.final_wait_s
            return (call.final_ts or call.end_ts) + wait
        if phase == PROCEEDING:
            return call.end_ts + cfg.proceeding_timeout_s
        if phase == CANCELLING:
            return (call.cancel_ts or call.end_ts) + cfg.no_final_timeout_s
        return call.txn_ts + cfg.no_final_timeout_s

    def _wake(self, call: CallState) -> float:
        """When to look at the leg next: its :meth:`_deadline`, or its next interim summary when earlier."""
        d = self._deadline(call)
        if self._interim and call.phase == ANSWERED and 0 < call.next_interim < d:
            return call.next_interim
        return d

    def _forget_closed(self, now: float) -> None:
        limit = now - self.cfg.closed_memory_s
        order, closed = self._closed_order, self._closed
        while order and order[0][0] < limit:
            ts, cid = order.popleft()
            entry = closed.get(cid)
            if entry is not None and entry[0] == ts:
                del closed[cid]

    # -- closing --------------------------------------------------------------------------------------

    def _close(self, call: CallState, flush_reason: str | None, now: float) -> CallSummary:
        """Close a leg: by its timer (``flush_reason`` None) or by :meth:`flush_all`."""
        cid = call.call_id
        del self._calls[cid]
        self._timers.cancel(cid)
        self._closed[cid] = (now, call.inv_cseq)
        self._closed_order.append((now, cid))
        self.stats["closed"] += 1
        self._touch(cid)
        answered = call.answer_ts is not None
        if answered:
            end_reason = "bye" if call.bye_ts is not None else (flush_reason or "timeout_no_bye")
        elif call.early_bye:
            end_reason = "bye"
        elif call.cancel_ts is not None and call.final_status in (None, 487):
            end_reason = "cancel"
        elif call.final_status is not None:
            end_reason = "final_response"
        else:
            end_reason = flush_reason or "timeout_no_final"
        if end_reason in ("timeout_no_final", "timeout_no_bye"):
            state = "expired"
        elif end_reason in ("bye", "cancel", "final_response"):
            state = "terminated"
        else:
            state = live_state(call)
        return summarize(call, self.trunks, final=True, end_reason=end_reason, state=state, now=now,
                         capture_end=flush_reason is not None)
