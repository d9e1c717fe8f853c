"""One INVITE dialog (one call leg) as complete, valid SIP over UDP (RFC 3261).

Flows by outcome (``>`` = caller to callee, ``<`` = back; 18x is 180 Ringing or 183 Session Progress
with SDP; every INVITE gets 100 Trying one half round trip later):

=============  ==================================================================================
answered       > INVITE(SDP)  < 100  < 18x  < 200(SDP)  > ACK  ... hold ...  BYE (either side)  200
busy           > INVITE  < 100  < 486  > ACK
no_answer      > INVITE  < 100  < 18x  ... ring ...  then  > CANCEL < 200 < 487 > ACK  or  < 480 > ACK
cancelled      > INVITE  < 100  > CANCEL  < 200  < 487  > ACK              (abandoned before ringing)
failed         > INVITE  < 100  < 5xx  > ACK
rejected       > INVITE  < 100  < 404/484/403/603  > ACK
=============  ==================================================================================

ACK for a non-2xx final shares the INVITE's branch (same transaction); ACK for the 200 and the BYE are
new transactions. CANCEL shares the INVITE's branch. The callee's BYE uses its own CSeq space (101).
Final failures and BYE carry a ``Reason: Q.850`` header, as carrier SBCs send.
"""

from __future__ import annotations

from typing import Any

from producers.loadgen.session import Session

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO, NOTIFY"
SDP_TAIL = ("t=0 0\r\nm=audio {port} RTP/AVP 8 0 18 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n")
SDP_ANSWER_TAIL = ("t=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
                   "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n")

REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 403: "Forbidden",
           404: "Not Found", 408: "Request Timeout", 480: "Temporarily Unavailable", 484: "Address Incomplete",
           486: "Busy Here", 487: "Request Terminated", 500: "Server Internal Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Server Time-out", 603: "Decline"}
Q850 = {403: 21, 404: 1, 408: 102, 480: 19, 484: 28, 486: 17, 487: 127, 500: 41, 502: 38, 503: 34, 504: 102,
        603: 21}


def _uri_user(number: str) -> str:
    """A full number as ``+E.164``; a short one (an extension, a scanner's ``100``) as it is."""
    return f"+{number}" if len(number) >= 7 else number


def _sdp(ip: str, sess: int, port: int, tail: str) -> str:
    return (f"v=0\r\no=- {sess} {sess} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\n"
            + tail.replace("{port}", str(port), 1))


class Call(Session):
    """One call leg between ``uac`` (sends the INVITE) and ``uas``, with its timeline fixed at creation.

    ``times`` gives the events that happen (seconds since the epoch); see :meth:`schedule`."""

    __slots__ = (
        "_c_uac",
        "_c_uas",
        "_cid",
        "_from",
        "_ruri",
        "_to",
        "_tot",
        "_via",
        "answer_ts",
        "b_ack",
        "b_bye",
        "b_inv",
        "call_id",
        "callee",
        "caller",
        "early",
        "end_ts",
        "final",
        "ftag",
        "hangup",
        "outcome",
        "sdp_answer",
        "sdp_offer",
        "trunk",
        "ttag",
        "uac",
        "uac_ua",
        "uas",
        "uas_ua",
    )

    def __init__(self, t0: float, *, kind: str, uac: tuple[str, int], uas: tuple[str, int], caller: str,
                 callee: str, ids: tuple[str, str, str, str, str, str], media: tuple[int, int, int],
                 uac_ua: str, uas_ua: str, trunk: str | None) -> None:
        super().__init__(t0, kind)
        self.uac, self.uas = uac, uas
        self.caller, self.callee = caller, callee
        self.call_id, self.ftag, self.ttag, self.b_inv, self.b_ack, self.b_bye = ids
        self.uac_ua, self.uas_ua = uac_ua, uas_ua
        self.trunk = trunk
        sess, port_a, port_b = media
        self.sdp_offer = _sdp(uac[0], sess, port_a, SDP_TAIL)
        self.sdp_answer = _sdp(uas[0], sess + 1, port_b, SDP_ANSWER_TAIL)
        a_ip, a_port = uac
        b_ip, b_port = uas
        self._via = f"Via: SIP/2.0/UDP {a_ip}:{a_port};branch=z9hG4bK{self.b_inv}"
        caller, callee = _uri_user(caller), _uri_user(callee)
        self._from = f"From: <sip:{caller}@{a_ip};user=phone>;tag={self.ftag}"
        self._to = f"To: <sip:{callee}@{b_ip};user=phone>"
        self._tot = f"{self._to};tag={self.ttag}"
        self._cid = f"Call-ID: {self.call_id}"
        self._ruri = f"sip:{callee}@{b_ip}:{b_port};user=phone"
        self._c_uac = f"sip:{caller}@{a_ip}:{a_port}"
        self._c_uas = f"sip:{callee}@{b_ip}:{b_port}"
        self.final = 0
        self.outcome = ""
        self.hangup = ""
        self.early = False
        self.answer_ts: float | None = None
        self.end_ts = t0

    # -- timeline ------------------------------------------------------------------------------------

    def schedule(self, outcome: str, *, d100: float, pdd: float, ring: float, hold: float, rtt: float,
                 final: int = 0, early: bool = False, hangup: str = "caller", cancel: bool = False) -> None:
        """Fix the timeline. ``pdd``: INVITE to the 18x (or to the final when nothing rings);
        ``ring``: 18x to the answer / CANCEL / 480; ``hold``: 200 to BYE; ``final``: the failure code."""
        t0 = self.t0
        tl = self.timeline
        half = rtt / 2
        t100 = t0 + d100
        tl += [(t0, Call.invite), (t100, Call.trying)]
        self.outcome = outcome
        self.early = early
        pdd = max(pdd, d100 + 0.002)
        if outcome == "cancelled":
            tc = max(t100 + 0.002, t0 + pdd)
            self._cancel(tc, half)
            return
        if outcome in ("answered", "no_answer"):
            tl.append((t0 + pdd, Call.progress if early else Call.ringing))
        t_ring = t0 + pdd
        if outcome == "answered":
            t200 = t_ring + max(ring, 0.001)
            tbye = t200 + half + max(hold, 0.002)
            self.answer_ts = t200
            self.hangup = hangup
            tl += [(t200, Call.ok_invite), (t200 + half, Call.ack_2xx)]
            if hangup == "caller":
                tl += [(tbye, Call.bye_uac), (tbye + rtt, Call.ok_bye_uac)]
            else:
                tl += [(tbye, Call.bye_uas), (tbye + rtt, Call.ok_bye_uas)]
            self.end_ts = tbye
            return
        if outcome == "no_answer":
            if cancel:
                self._cancel(t_ring + max(ring, 0.001), half)
                return
            final = final or 480
            t_ring += max(ring, 0.001)
        self.final = final
        tl += [(t_ring, Call.failure), (t_ring + half, Call.ack_failure)]
        self.end_ts = t_ring

    def _cancel(self, tc: float, half: float) -> None:
        self.final = 487
        self.hangup = "caller"
        t487 = tc + half + 0.001
        self.timeline += [(tc, Call.cancel), (tc + half, Call.ok_cancel), (t487, Call.failure),
                          (t487 + half, Call.ack_failure)]
        self.end_ts = t487

    def plan(self) -> dict[str, Any]:
        return {"kind": self.kind, "call_id": self.call_id, "outcome": self.outcome, "final": self.final or
                (200 if self.answer_ts else None), "trunk": self.trunk, "src": self.uac[0], "dst": self.uas[0],
                "caller": self.caller, "callee": self.callee, "start": self.t0, "answer": self.answer_ts,
                "end": self.end_ts, "hangup": self.hangup or None, "messages": len(self.timeline)}

    # -- messages (each returns the wire tuple) ------------------------------------------------------

    def invite(self) -> tuple:
        body = self.sdp_offer
        text = (f"INVITE {self._ruri} SIP/2.0\r\n{self._via}\r\nMax-Forwards: 70\r\n{self._from}\r\n{self._to}\r\n"
                f"{self._cid}\r\nCSeq: 1 INVITE\r\nContact: <{self._c_uac}>\r\n"
                f"P-Asserted-Identity: <sip:{_uri_user(self.caller)}@{self.uac[0]};user=phone>\r\n"
                f"User-Agent: {self.uac_ua}\r\nAllow: {ALLOW}\r\nSupported: timer\r\nSession-Expires: 1800\r\n"
                f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        return (*self.uac, *self.uas, text.encode())

    def _response(self, code: int, cseq: str, to: str, extra: str = "", body: str = "") -> tuple:
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        text = (f"SIP/2.0 {code} {REASONS[code]}\r\n{self._via}\r\n{self._from}\r\n{to}\r\n{self._cid}\r\n"
                f"CSeq: {cseq}\r\n{extra}Server: {self.uas_ua}\r\n{ctype}Content-Length: {len(body)}\r\n\r\n{body}")
        return (*self.uas, *self.uac, text.encode())

    def trying(self) -> tuple:
        return self._response(100, "1 INVITE", self._to)

    def ringing(self) -> tuple:
        return self._response(180, "1 INVITE", self._tot, f"Contact: <{self._c_uas}>\r\n")

    def progress(self) -> tuple:
        return self._response(183, "1 INVITE", self._tot, f"Contact: <{self._c_uas}>\r\n", self.sdp_answer)

    def ok_invite(self) -> tuple:
        extra = f"Contact: <{self._c_uas}>\r\nAllow: {ALLOW}\r\nSupported: timer\r\nSession-Expires: 1800;refresher=uac\r\n"
        return self._response(200, "1 INVITE", self._tot, extra, self.sdp_answer)

    def failure(self) -> tuple:
        code = self.final
        cause = Q850.get(code, 31)
        return self._response(code, "1 INVITE", self._tot, f"Reason: Q.850;cause={cause}\r\n")

    def ok_cancel(self) -> tuple:
        return self._response(200, "1 CANCEL", self._tot)

    def _request_uac(self, method: str, ruri: str, via: str, cseq: str, extra: str = "") -> tuple:
        text = (f"{method} {ruri} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{self._from}\r\n{self._tot if method != 'CANCEL' else self._to}\r\n"
                f"{self._cid}\r\nCSeq: {cseq}\r\n{extra}User-Agent: {self.uac_ua}\r\nContent-Length: 0\r\n\r\n")
        return (*self.uac, *self.uas, text.encode())

    def ack_failure(self) -> tuple:
        return self._request_uac("ACK", self._ruri, self._via, "1 ACK")

    def cancel(self) -> tuple:
        return self._request_uac("CANCEL", self._ruri, self._via, "1 CANCEL")

    def ack_2xx(self) -> tuple:
        via = f"Via: SIP/2.0/UDP {self.uac[0]}:{self.uac[1]};branch=z9hG4bK{self.b_ack}"
        return self._request_uac("ACK", self._c_uas, via, "1 ACK")

    def bye_uac(self) -> tuple:
        via = f"Via: SIP/2.0/UDP {self.uac[0]}:{self.uac[1]};branch=z9hG4bK{self.b_bye}"
        return self._request_uac("BYE", self._c_uas, via, "2 BYE", 'Reason: Q.850;cause=16;text="Normal call clearing"\r\n')

    def ok_bye_uac(self) -> tuple:
        via = f"Via: SIP/2.0/UDP {self.uac[0]}:{self.uac[1]};branch=z9hG4bK{self.b_bye}"
        text = (f"SIP/2.0 200 OK\r\n{via}\r\n{self._from}\r\n{self._tot}\r\n{self._cid}\r\nCSeq: 2 BYE\r\n"
                f"Server: {self.uas_ua}\r\nContent-Length: 0\r\n\r\n")
        return (*self.uas, *self.uac, text.encode())

    def _uas_bye_heads(self) -> str:
        b_ip, b_port = self.uas
        a_ip = self.uac[0]
        return (f"Via: SIP/2.0/UDP {b_ip}:{b_port};branch=z9hG4bK{self.b_bye}\r\n"
                f"From: <sip:{_uri_user(self.callee)}@{b_ip};user=phone>;tag={self.ttag}\r\n"
                f"To: <sip:{_uri_user(self.caller)}@{a_ip};user=phone>;tag={self.ftag}\r\n{self._cid}\r\n"
                "CSeq: 101 BYE\r\n")

    def bye_uas(self) -> tuple:
        text = (f"BYE {self._c_uac} SIP/2.0\r\n{self._uas_bye_heads()}Max-Forwards: 70\r\n"
                f'Reason: Q.850;cause=16;text="Normal call clearing"\r\nUser-Agent: {self.uas_ua}\r\n'
                "Content-Length: 0\r\n\r\n")
        return (*self.uas, *self.uac, text.encode())

    def ok_bye_uas(self) -> tuple:
        text = f"SIP/2.0 200 OK\r\n{self._uas_bye_heads()}Server: {self.uac_ua}\r\nContent-Length: 0\r\n\r\n"
        return (*self.uac, *self.uas, text.encode())
