"""ParsedSip + capture metadata -> the wire record :class:`sipscope.records.SipMessage`. Pure.

:func:`to_record` builds the record from a :class:`~producers.sip_parser.ParsedSip`;
:func:`native_record` is the capture fast path's ``to_record(parse_sip(data, ...), ...)`` in one call to
the native core (``sipscope_sipcore.record``): the same record, without the ``ParsedSip``, its headers
dict and body that the record does not use, and with the id hashed natively. It returns None when the
core is not installed or declines the message; the caller then uses ``parse_sip`` and ``to_record``.
"""

from __future__ import annotations

from functools import lru_cache

from producers.sip_parser import ParsedSip
from sipscope.numbers import NumberPlan, normalise
from sipscope.records import SdpSummary, SipMessage, message_id

try:  # the optional native core (producers/sipcore, built by `make setup`)
    from sipscope_sipcore import record as _native_record
except ImportError:  # pragma: no cover - depends on the installation
    _native_record = None

NATIVE_RECORD: bool = _native_record is not None
"""Whether :func:`native_record` can build records (the native core is installed)."""

E164_MEMO_SIZE = 65536
"""Entries of each :class:`E164Memo` before it starts over."""


class E164Memo(dict):
    """``memo[user]`` = :func:`sipscope.numbers.normalise` ``(user, plan)`` for one plan, memoised.

    ``normalise`` is pure and the same users recur in every message of a dialog and across calls; a hit
    is one dict lookup (an ``lru_cache`` keyed by ``(user, plan)`` hashes the plan on every call).
    """

    __slots__ = ("plan",)

    def __init__(self, plan: NumberPlan) -> None:
        super().__init__()
        self.plan = plan

    def __missing__(self, user: str) -> str | None:
        if len(self) >= E164_MEMO_SIZE:
            self.clear()
        e164 = self[user] = normalise(user, self.plan)
        return e164


e164_memo = lru_cache(maxsize=16)(E164Memo)
"""The :class:`E164Memo` of a plan (one per plan, shared by every caller)."""


def to_record(
    parsed: ParsedSip,
    *,
    ts: float,
    src_ip: str,
    src_port: int,
    dst_ip: str,
    dst_port: int,
    transport: str,
    node: str = "",
    direction: str = "",
    correlation_id: str | None = None,
    plan: NumberPlan,
) -> SipMessage:
    """Fill every field of a :class:`SipMessage` from one parsed message and where/when it was seen.

    * ``correlation_id`` (e.g. a HEP correlation chunk) wins over the one found in the headers.
    * ``user_agent`` is User-Agent for requests and Server for responses, either when only one is there.
    * ``expires`` is the Expires header, else the ``expires`` parameter of the first Contact.
    * ``*_e164`` fields are :func:`sipscope.numbers.normalise` of the raw user parts under ``plan``.
    """
    p = parsed
    raw = p.raw
    if p.is_request:
        user_agent = p.user_agent if p.user_agent is not None else p.server
    else:
        user_agent = p.server if p.server is not None else p.user_agent
    fields = (
        message_id(node, ts, src_ip, src_port, dst_ip, dst_port, raw), p.is_request, p.method, p.status_code,
        p.reason, p.ruri, p.ruri_user, p.call_id, p.cseq_num, p.cseq_method, p.from_display, p.from_user,
        p.from_host, p.from_tag, p.to_display, p.to_user, p.to_host, p.to_tag, p.pai_user, p.diversion_user,
        p.contact, user_agent, p.via_branch, p.via_count, p.max_forwards,
        p.expires if p.expires is not None else p.contact_expires, p.auth_user, p.q850_cause, p.reason_text,
        correlation_id or p.correlation_id, p.content_type, p.sdp, raw.decode("utf-8", "replace"),
    )
    m = _message(fields, ts, src_ip, src_port, dst_ip, dst_port, transport, node, e164_memo(plan))
    m.direction = direction
    return m

def native_record(
    data: bytes,
    correlation_headers: tuple[str, ...],
    ts: float,
    src_ip: str,
    src_port: int,
    dst_ip: str,
    dst_port: int,
    transport: str,
    node: str,
    e164: E164Memo,
) -> SipMessage | None:
    """``to_record(parse_sip(data, correlation_headers), ts=ts, ..., node=node, plan=e164.plan)`` by the
    native core in one call (positional arguments: this is the per-message path), or None when the core
    is not installed or declines the message. ``e164`` is :func:`e164_memo` of the number plan.
    """
    if _native_record is None:
        return None
    try:
        fields = _native_record(data, correlation_headers, node, ts, src_ip, src_port, dst_ip, dst_port)
    except BaseException as exc:  # noqa: BLE001 - as in parse_sip: a panic in the core (a BaseException) or
        # odd arguments; the Python path decides, bad input never stops a stage
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        return None
    if fields is None:
        return None
    return _message(fields, ts, src_ip, src_port, dst_ip, dst_port, transport, node, e164)


def _message(fields: tuple, ts: float, src_ip: str, src_port: int, dst_ip: str, dst_port: int, transport: str,
             node: str, e164: E164Memo) -> SipMessage:
    """The record from the values of one message in the native core's order (``sipscope_sipcore.record``;
    :func:`to_record` builds the same tuple from a ``ParsedSip``). ``sdp`` is an :class:`SdpSummary` or the
    core's ``(media_ip, audio_port, video_port, codecs, direction)``."""
    (mid, is_request, method, status_code, reason, ruri, ruri_user, call_id, cseq_num, cseq_method,
     from_display, from_user, from_host, from_tag, to_display, to_user, to_host, to_tag, pai_user,
     diversion_user, contact, user_agent, via_branch, via_count, max_forwards, expires, auth_user,
     q850_cause, reason_text, correlation_id, content_type, sdp, raw) = fields  # fmt: skip
    # Required fields by keyword, the rest by attribute: msgspec binds 45 keywords ~3x slower.
    m = SipMessage(
        ts=ts,
        src_ip=src_ip,
        src_port=src_port,
        dst_ip=dst_ip,
        dst_port=dst_port,
        transport=transport.lower(),
        is_request=is_request,
        call_id=call_id,
        cseq_num=cseq_num,
        cseq_method=cseq_method,
        raw=raw,
    )
    m.id = mid
    m.node = node
    m.method = method
    m.status_code = status_code
    m.reason = reason
    m.ruri = ruri
    m.ruri_user = ruri_user
    m.ruri_user_e164 = None if ruri_user is None else e164[ruri_user]
    m.from_display = from_display
    m.from_user = from_user
    m.from_user_e164 = None if from_user is None else e164[from_user]
    m.from_host = from_host
    m.from_tag = from_tag
    m.to_display = to_display
    m.to_user = to_user
    m.to_user_e164 = None if to_user is None else e164[to_user]
    m.to_host = to_host
    m.to_tag = to_tag
    m.pai_user = pai_user
    m.pai_user_e164 = None if pai_user is None else e164[pai_user]
    m.diversion_user = diversion_user
    m.diversion_user_e164 = None if diversion_user is None else e164[diversion_user]
    m.contact = contact
    m.user_agent = user_agent
    m.via_branch = via_branch
    m.via_count = via_count
    m.max_forwards = max_forwards
    m.expires = expires
    m.auth_user = auth_user
    m.q850_cause = q850_cause
    m.reason_text = reason_text
    m.correlation_id = correlation_id
    m.content_type = content_type
    if type(sdp) is tuple:
        media_ip, audio_port, video_port, codecs, direction = sdp
        sdp = SdpSummary(
            media_ip=media_ip, audio_port=audio_port, video_port=video_port, codecs=codecs, direction=direction
        )
    m.sdp = sdp
    return m
