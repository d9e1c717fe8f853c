"""REGISTER chains (RFC 3261 section 10 with an RFC 2617/8760 digest challenge) and one-shot probes.

A registration: ``REGISTER`` -> ``401 Unauthorized`` (``WWW-Authenticate: Digest``) -> ``REGISTER``
(CSeq + 1, same Call-ID, ``Authorization`` with a real MD5 digest response) -> ``200 OK`` (Contact with
the granted expiry) or ``403 Forbidden`` (wrong password). Without a challenge: ``REGISTER`` -> ``200``.

A probe (scanners): one out-of-dialog request (``OPTIONS`` or ``REGISTER``) and its single response.
"""

from __future__ import annotations

import hashlib
from typing import Any

from producers.loadgen.session import Session

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, REFER, MESSAGE, SUBSCRIBE, INFO, UPDATE"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class Register(Session):
    """One REGISTER chain from a user agent to the registrar (the SBC)."""

    __slots__ = (
        "_cid",
        "_contact",
        "_from",
        "b1",
        "b2",
        "call_id",
        "challenged",
        "cnonce",
        "domain",
        "expires",
        "ftag",
        "nonce",
        "password",
        "registrar",
        "result",
        "server",
        "ttag",
        "ua",
        "ua_name",
        "user",
    )

    def __init__(self, t0: float, *, kind: str, ua: tuple[str, int], registrar: tuple[str, int], user: str,
                 domain: str, ids: tuple[str, str, str, str, str, str, str], password: str, expires: int,
                 ua_name: str, server: str) -> None:
        super().__init__(t0, kind)
        self.ua, self.registrar = ua, registrar
        self.user, self.domain = user, domain
        self.call_id, self.ftag, self.ttag, self.b1, self.b2, self.nonce, self.cnonce = ids
        self.password, self.expires = password, expires
        self.ua_name, self.server = ua_name, server
        self.result = 200
        self.challenged = True
        self._from = f"From: <sip:{user}@{domain}>;tag={self.ftag}"
        self._cid = f"Call-ID: {self.call_id}"
        self._contact = f"<sip:{user}@{ua[0]}:{ua[1]};transport=udp>"

    def schedule(self, *, challenge: bool, result: int, rtt: float, think: float) -> None:
        """``result``: final status of the (last) REGISTER, 200 or 403; ``think``: 401 -> retry delay."""
        t = self.t0
        self.result, self.challenged = result, challenge
        if challenge:
            t401 = t + rtt
            t2 = t401 + think
            self.timeline += [(t, Register.register1), (t401, Register.unauthorized),
                              (t2, Register.register2), (t2 + rtt, Register.final)]
        else:
            self.timeline += [(t, Register.register1), (t + rtt, Register.final)]

    def plan(self) -> dict[str, Any]:
        return {"kind": self.kind, "call_id": self.call_id, "user": self.user, "src": self.ua[0],
                "dst": self.registrar[0], "start": self.t0, "end": self.timeline[-1][0], "final": self.result,
                "challenged": self.challenged, "messages": len(self.timeline)}

    def _request(self, cseq: int, branch: str, auth: str) -> tuple:
        ip, port = self.ua
        text = (f"REGISTER sip:{self.domain} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK{branch};rport\r\n"
                f"Max-Forwards: 70\r\n{self._from}\r\nTo: <sip:{self.user}@{self.domain}>\r\n{self._cid}\r\n"
                f"CSeq: {cseq} REGISTER\r\nContact: {self._contact}\r\n{auth}Expires: {self.expires}\r\n"
                f"Allow: {ALLOW}\r\nUser-Agent: {self.ua_name}\r\nContent-Length: 0\r\n\r\n")
        return (*self.ua, *self.registrar, text.encode())

    def _response(self, code: int, reason: str, cseq: int, branch: str, extra: str) -> tuple:
        ip, port = self.ua
        text = (f"SIP/2.0 {code} {reason}\r\nVia: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK{branch};rport={port};"
                f"received={ip}\r\n{self._from}\r\nTo: <sip:{self.user}@{self.domain}>;tag={self.ttag}\r\n"
                f"{self._cid}\r\nCSeq: {cseq} REGISTER\r\n{extra}Server: {self.server}\r\nContent-Length: 0\r\n\r\n")
        return (*self.registrar, *self.ua, text.encode())

    def register1(self) -> tuple:
        return self._request(1, self.b1, "")

    def unauthorized(self) -> tuple:
        extra = f'WWW-Authenticate: Digest realm="{self.domain}", nonce="{self.nonce}", algorithm=MD5, qop="auth"\r\n'
        return self._response(401, "Unauthorized", 1, self.b1, extra)

    def register2(self) -> tuple:
        uri = f"sip:{self.domain}"
        ha1 = _md5(f"{self.user}:{self.domain}:{self.password}")
        ha2 = _md5(f"REGISTER:{uri}")
        response = _md5(f"{ha1}:{self.nonce}:00000001:{self.cnonce}:auth:{ha2}")
        auth = (f'Authorization: Digest username="{self.user}", realm="{self.domain}", nonce="{self.nonce}", '
                f'uri="{uri}", response="{response}", algorithm=MD5, cnonce="{self.cnonce}", qop=auth, nc=00000001\r\n')
        return self._request(2, self.b2, auth)

    def final(self) -> tuple:
        cseq, branch = (2, self.b2) if self.challenged else (1, self.b1)
        if self.result == 200:
            return self._response(200, "OK", cseq, branch, f"Contact: {self._contact};expires={self.expires}\r\n")
        return self._response(403, "Forbidden", cseq, branch, "")


class Probe(Session):
    """One scanner request and its response (``code`` 0 = no response)."""

    __slots__ = ("branch", "call_id", "code", "dst", "ftag", "method", "server", "src", "ua_name", "user")

    def __init__(self, t0: float, *, kind: str, src: tuple[str, int], dst: tuple[str, int], method: str,
                 user: str, ids: tuple[str, str, str], ua_name: str, code: int, server: str, rtt: float) -> None:
        super().__init__(t0, kind)
        self.src, self.dst, self.method, self.user = src, dst, method, user
        self.call_id, self.ftag, self.branch = ids
        self.ua_name, self.code, self.server = ua_name, code, server
        self.timeline.append((t0, Probe.request))
        if code:
            self.timeline.append((t0 + rtt, Probe.response))

    def plan(self) -> dict[str, Any]:
        return {"kind": self.kind, "call_id": self.call_id, "method": self.method, "user": self.user,
                "src": self.src[0], "dst": self.dst[0], "start": self.t0, "final": self.code or None,
                "messages": len(self.timeline)}

    def _heads(self, to_tag: str = "") -> str:
        ip, port = self.src
        # sipvicious' style: From and To claim a fixed fake host, the tag is its own
        return (f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-{self.branch};rport\r\n"
                f'From: "{self.user}"<sip:{self.user}@1.1.1.1>;tag={self.ftag}\r\n'
                f'To: "{self.user}"<sip:{self.user}@1.1.1.1>{to_tag}\r\nCall-ID: {self.call_id}\r\n'
                f"CSeq: 1 {self.method}\r\n")

    def request(self) -> tuple:
        ip, port = self.src
        text = (f"{self.method} sip:{self.user}@{self.dst[0]} SIP/2.0\r\n{self._heads()}Max-Forwards: 70\r\n"
                f"Contact: <sip:{self.user}@{ip}:{port}>\r\nAccept: application/sdp\r\nUser-Agent: {self.ua_name}\r\n"
                "Content-Length: 0\r\n\r\n")
        return (*self.src, *self.dst, text.encode())

    def response(self) -> tuple:
        reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(self.code, "Error")
        extra = f"Allow: {ALLOW}\r\n" if self.code == 200 else ""
        text = (f"SIP/2.0 {self.code} {reason}\r\n{self._heads(';tag=' + self.branch[:10])}{extra}Server: {self.server}\r\n"
                "Content-Length: 0\r\n\r\n")
        return (*self.dst, *self.src, text.encode())
