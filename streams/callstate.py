"""Per-leg state of the call tracker, and the summary built from it.

:class:`CallState` is what a worker keeps per Call-ID in a changelog-backed table (``to_state()`` /
``from_state()``); :func:`summarize` turns it into the wire record. The rules that fill it are in
:mod:`streams.dialogs`; outcomes and timings are defined in :mod:`streams.outcomes`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sipscope.records import CallSummary, stable_id
from streams import outcomes
from streams.trunks import TrunkMap

# internal phases (drive the timers); the public ``state`` is derived from them
CALLING = "calling"          # initial INVITE sent, no response yet
PROCEEDING = "proceeding"    # 100 / 18x received, no final
CANCELLING = "cancelling"    # CANCEL sent, no final
FAILED = "failed"            # final >= 300 received
ANSWERED = "answered"        # 2xx received
ENDING = "ending"            # BYE sent


class CallState(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False):
    """Everything the tracker keeps about one open leg (rules: :mod:`streams.dialogs`)."""

    call_id: str
    start_ts: float
    """First INVITE (t1)."""
    end_ts: float
    """Latest message (retransmissions and duplicates included)."""
    caller_ip: str
    """Source of the first INVITE: responses sent to it are the ones the caller received."""
    from_tag: str | None = None
    inv_cseq: int = 0
    """CSeq of the current initial INVITE transaction."""
    txn_ts: float = 0.0
    """First INVITE of the current initial transaction (Timer B runs from it)."""
    phase: str = CALLING
    got_response: bool = False
    confirmed: bool = False

    caller: str | None = None
    caller_e164: str | None = None
    callee: str | None = None
    callee_e164: str | None = None
    ruri: str | None = None
    ruri_user: str | None = None
    ruri_user_e164: str | None = None
    pai_user: str | None = None
    pai_user_e164: str | None = None
    diversion_user: str | None = None
    diversion_user_e164: str | None = None
    src_ip: str | None = None
    dst_ip: str | None = None
    caller_agent: str | None = None
    callee_agent: str | None = None
    trying_agent: str | None = None
    codecs: list[str] = []
    answer_codecs: list[str] = []
    correlation_id: str | None = None
    hosts: list[str] = []
    nodes: list[str] = []

    prov_ts: float | None = None
    prov_to_caller: bool = False
    ringing_ts: float | None = None
    ringing_to_caller: bool = False
    answer_ts: float | None = None
    answer_to_caller: bool = False
    final_ts: float | None = None
    final_status: int | None = None
    final_reason: str | None = None
    final_to_caller: bool = False
    ack_ts: float | None = None
    cancel_ts: float | None = None
    bye_ts: float | None = None
    bye_cseq: int | None = None
    bye_src_ip: str | None = None
    bye_ok_ts: float | None = None
    bye_ok_to_sender: bool = False
    early_bye: bool = False
    q850_cause: int | None = None
    hangup_by: str | None = None

    messages: int = 0
    retransmissions: int = 0
    duplicates: int = 0
    seen: dict[int, list[float | str]] = {}
    """Payload hash -> [time of last transmission, capture nodes that reported it]."""
    next_interim: float = 0.0

    def to_state(self) -> dict[str, Any]:
        """Plain dict (JSON-able) for a changelog-backed table."""
        return msgspec.to_builtins(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CallState:
        return msgspec.convert(state, cls, strict=False)


def live_state(call: CallState) -> str:
    """The public ``state`` of a leg still open."""
    if call.answer_ts is not None:
        return "confirmed" if call.confirmed else "answered"
    if call.phase in (ENDING, FAILED):
        return "terminated"
    return "ringing" if call.ringing_ts is not None else "trying"

def summarize(call: CallState, trunks: TrunkMap, *, final: bool, end_reason: str, state: str, now: float,
              capture_end: bool = False) -> CallSummary:
    """The :class:`CallSummary` of a leg (``now``: event time, for the duration of a leg still open)."""
    start = call.start_ts
    answered = call.answer_ts is not None
    ringing = call.ringing_ts is not None
    abandoned = call.cancel_ts is not None or call.early_bye
    outcome = outcomes.call_outcome(call.final_status, ringing, abandoned, call.got_response,
                                    capture_end or not final)
    prov = call.prov_ts
    if answered:
        ring_end = call.answer_ts
        if call.bye_ts is not None:
            dur_end = call.bye_ts
        elif capture_end or not final:
            dur_end = max(now, call.end_ts)
        else:
            dur_end = call.end_ts
    else:
        ring_end = call.cancel_ts or (call.bye_ts if call.early_bye else None) or call.final_ts
        dur_end = None
    # Required fields by keyword, the rest by attribute: msgspec binds 50 keywords ~3x slower.
    s = CallSummary(id=stable_id(call.call_id, start), call_id=call.call_id, outcome=outcome, start_ts=start,
                    end_ts=call.end_ts)
    s.correlation_id = call.correlation_id
    s.final = final
    s.state = state
    s.end_reason = end_reason
    s.caller = call.caller
    s.caller_e164 = call.caller_e164
    s.callee = call.callee
    s.callee_e164 = call.callee_e164
    s.ruri = call.ruri
    s.ruri_user = call.ruri_user
    s.ruri_user_e164 = call.ruri_user_e164
    s.pai_user = call.pai_user
    s.pai_user_e164 = call.pai_user_e164
    s.diversion_user = call.diversion_user
    s.diversion_user_e164 = call.diversion_user_e164
    s.src_ip = call.src_ip
    s.dst_ip = call.dst_ip
    s.src_trunk = trunks.lookup(call.src_ip)
    s.dst_trunk = trunks.lookup(call.dst_ip)
    s.hosts = list(call.hosts)
    s.caller_agent = call.caller_agent
    s.callee_agent = call.callee_agent or call.trying_agent
    s.invite_ts = start
    s.first_provisional_ts = prov
    s.ringing_ts = call.ringing_ts
    s.answer_ts = call.answer_ts
    s.ack_ts = call.ack_ts
    s.bye_ts = call.bye_ts
    s.bye_ok_ts = call.bye_ok_ts
    s.final_ts = call.final_ts
    s.final_status = call.final_status
    s.final_reason = call.final_reason
    s.q850_cause = call.q850_cause
    s.hangup_by = call.hangup_by
    # Intervals: milliseconds round((b - a) * 1000.0, 3), seconds round(b - a, 6), None when an end is
    # missing; written out rather than in a helper (six calls per summary), and start is never None.
    if answered:
        first = prov if prov is not None else call.answer_ts
        s.srd_success_ms = round((first - start) * 1000.0, 3)
        bye, bye_ok = call.bye_ts, call.bye_ok_ts
        s.sdd_ms = None if bye is None or bye_ok is None else round((bye_ok - bye) * 1000.0, 3)
        s.duration_s = None if dur_end is None else round(dur_end - call.answer_ts, 6)
    elif outcomes.is_failure_response(call.final_status):
        s.srd_failure_ms = None if call.final_ts is None else round((call.final_ts - start) * 1000.0, 3)
    if prov is not None:
        s.ring_time_s = None if ring_end is None else round(ring_end - prov, 6)
    first = prov if prov is not None else call.final_ts
    s.pdd_ms = None if first is None else round((first - start) * 1000.0, 3)
    s.messages = call.messages
    s.retransmissions = call.retransmissions
    s.duplicates = call.duplicates
    s.codecs = list(call.codecs)
    s.answer_codecs = list(call.answer_codecs)
    s.nodes = list(call.nodes)
    return s
