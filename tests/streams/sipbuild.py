"""Hand-written SipMessage sequences for the engine tests.

``raw`` is rendered from every field except the capture time and node, so sending the same message again
(a retransmission) or reporting it from another capture point (a duplicate) gives identical bytes, and
two different messages never do.
"""

from __future__ import annotations

from sipscope.records import SdpSummary, SipMessage

A = ("10.0.0.1", 5060)   # caller
P = ("10.0.0.5", 5060)   # proxy / B2BUA
B = ("10.0.0.2", 5060)   # callee

_FIELDS = set(SipMessage.__struct_fields__)
"""Keyword fields that are SipMessage fields are set on the record; any other one only goes into ``raw``
(e.g. ``timestamp="1"`` makes a different message with the same CSeq)."""


def _raw(first: str, *, call_id: str, cseq: int, cseq_method: str, src, dst, from_tag, to_tag, branch,
         from_user, to_user, extra: dict) -> str:
    lines = [first, f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch={branch}",
             f"From: <sip:{from_user}@x>;tag={from_tag}",
             f"To: <sip:{to_user}@x>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id}", f"CSeq: {cseq} {cseq_method}", f"X-Route: {src[0]}:{src[1]}>{dst[0]}:{dst[1]}"]
    lines += [f"X-{k}: {v}" for k, v in sorted(extra.items())]
    return "\r\n".join(lines) + "\r\n\r\n"


class Leg:
    """One Call-ID between a caller and a callee (optionally through hops given per message)."""

    def __init__(self, call_id: str = "call-1@test", *, caller=A, callee=B, from_user: str = "61299990001",
                 to_user: str = "61299990002", from_tag: str = "ftag", to_tag: str = "ttag", node: str = "n1",
                 ruri_user: str | None = None) -> None:
        self.call_id = call_id
        self.caller, self.callee = caller, callee
        self.from_user, self.to_user = from_user, to_user
        self.from_tag, self.to_tag = from_tag, to_tag
        self.node = node
        self.ruri_user = ruri_user or to_user

    def request(self, ts: float, method: str, cseq: int = 1, *, src=None, dst=None, from_tag: str | None = None,
                to_tag: str | None = None, branch: str | None = None, node: str | None = None,
                cseq_method: str | None = None, reverse: bool = False, **fields) -> SipMessage:
        """A request; ``reverse=True`` sends it from the callee (From/To swapped, tags swapped)."""
        if reverse:
            src = src or self.callee
            dst = dst or self.caller
            from_tag = from_tag if from_tag is not None else self.to_tag
            to_tag = to_tag if to_tag is not None else self.from_tag
            from_user, to_user = self.to_user, self.from_user
        else:
            src = src or self.caller
            dst = dst or self.callee
            from_tag = from_tag if from_tag is not None else self.from_tag
            from_user, to_user = self.from_user, self.to_user
        cm = cseq_method or method
        branch = branch or f"z9hG4bK-{method.lower()}-{cseq}-{src[0]}"
        extra = {k: v for k, v in fields.items() if k not in ("sdp",) and v is not None}
        raw = _raw(f"{method} sip:{to_user}@{dst[0]} SIP/2.0", call_id=self.call_id, cseq=cseq, cseq_method=cm,
                   src=src, dst=dst, from_tag=from_tag, to_tag=to_tag, branch=branch, from_user=from_user,
                   to_user=to_user, extra=extra)
        kw = {k: v for k, v in fields.items() if k in _FIELDS}
        sdp = kw.pop("sdp", None)
        return SipMessage(
            ts=ts, src_ip=src[0], src_port=src[1], dst_ip=dst[0], dst_port=dst[1], transport="udp",
            node=node or self.node, is_request=True, method=method, ruri=f"sip:{to_user}@{dst[0]}",
            ruri_user=self.ruri_user if not reverse else to_user, call_id=self.call_id, cseq_num=cseq,
            cseq_method=cm, from_user=from_user, from_tag=from_tag, to_user=to_user, to_tag=to_tag,
            via_branch=branch, raw=raw, sdp=SdpSummary(codecs=sdp) if sdp else None, **kw)

    def invite(self, ts: float, cseq: int = 1, **kw) -> SipMessage:
        kw.setdefault("sdp", ["PCMA/8000"])
        return self.request(ts, "INVITE", cseq, **kw)

    def response(self, ts: float, code: int, cseq: int = 1, method: str = "INVITE", *, src=None, dst=None,
                 to_tag: str | None = "default", from_tag: str | None = None, branch: str | None = None,
                 node: str | None = None, reverse: bool = False, reason: str | None = None, **fields) -> SipMessage:
        """A response; by default from the callee to the caller (``reverse=True``: from the caller, e.g.
        the 200 answering the callee's BYE)."""
        if reverse:
            src = src or self.caller
            dst = dst or self.callee
            from_tag = from_tag if from_tag is not None else self.to_tag
            from_user, to_user = self.to_user, self.from_user
            tt = self.from_tag if to_tag == "default" else to_tag
        else:
            src = src or self.callee
            dst = dst or self.caller
            from_tag = from_tag if from_tag is not None else self.from_tag
            from_user, to_user = self.from_user, self.to_user
            tt = (None if code == 100 else self.to_tag) if to_tag == "default" else to_tag
        branch = branch or f"z9hG4bK-{method.lower()}-{cseq}-{dst[0]}"
        extra = {k: v for k, v in fields.items() if k != "sdp" and v is not None}
        raw = _raw(f"SIP/2.0 {code} {reason or 'Reason'}", call_id=self.call_id, cseq=cseq, cseq_method=method,
                   src=src, dst=dst, from_tag=from_tag, to_tag=tt, branch=branch, from_user=from_user,
                   to_user=to_user, extra=extra)
        kw = {k: v for k, v in fields.items() if k in _FIELDS}
        sdp = kw.pop("sdp", None)
        return SipMessage(
            ts=ts, src_ip=src[0], src_port=src[1], dst_ip=dst[0], dst_port=dst[1], transport="udp",
            node=node or self.node, is_request=False, status_code=code, reason=reason or "Reason",
            call_id=self.call_id, cseq_num=cseq, cseq_method=method, from_user=from_user, from_tag=from_tag,
            to_user=to_user, to_tag=tt, via_branch=branch, raw=raw,
            sdp=SdpSummary(codecs=sdp) if sdp else None, **kw)

    def again(self, msg: SipMessage, ts: float, node: str | None = None) -> SipMessage:
        """The same bytes seen again at ``ts`` (retransmission, or a duplicate from ``node``)."""
        import msgspec

        return msgspec.structs.replace(msg, ts=ts, node=node or msg.node)


def answered_call(leg: Leg, t0: float = 1000.0, *, bye_from_callee: bool = False) -> list[SipMessage]:
    """INVITE, 100, 180 (+0.2 s), 200 (+3 s), ACK, BYE (+63 s), 200."""
    msgs = [leg.invite(t0), leg.response(t0 + 0.01, 100), leg.response(t0 + 0.2, 180),
            leg.response(t0 + 3.0, 200, sdp=["PCMA/8000"]), leg.request(t0 + 3.05, "ACK", 1, to_tag=leg.to_tag)]
    if bye_from_callee:
        msgs += [leg.request(t0 + 63.0, "BYE", 1, reverse=True),
                 leg.response(t0 + 63.02, 200, 1, "BYE", reverse=True)]
    else:
        msgs += [leg.request(t0 + 63.0, "BYE", 2, to_tag=leg.to_tag),
                 leg.response(t0 + 63.02, 200, 2, "BYE")]
    return msgs
