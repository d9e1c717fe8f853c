"""ParsedSip + capture metadata -> the wire record :class:`sipscope.records.SipMessage`. Pure."""

from __future__ import annotations

from functools import lru_cache

from producers.sip_parser import ParsedSip
from sipscope.numbers import NumberPlan, normalise

_e164 = lru_cache(maxsize=65536)(normalise)
"""``normalise`` memoised (pure; the same users recur in every message of a dialog and across calls)."""
from sipscope.records import SipMessage, message_id


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
    # Required fields by keyword, the rest by attribute: msgspec binds 45 keywords ~3x slower.
    m = SipMessage(
        ts=ts,
        src_ip=src_ip,
        src_port=src_port,
        dst_ip=dst_ip,
        dst_port=dst_port,
        transport=transport.lower(),
        is_request=p.is_request,
        call_id=p.call_id,
        cseq_num=p.cseq_num,
        cseq_method=p.cseq_method,
        raw=raw.decode("utf-8", "replace"),
    )
    m.id = message_id(node, ts, src_ip, src_port, dst_ip, dst_port, raw)
    m.node = node
    m.direction = direction
    m.method = p.method
    m.status_code = p.status_code
    m.reason = p.reason
    m.ruri = p.ruri
    m.ruri_user = p.ruri_user
    u = p.ruri_user
    m.ruri_user_e164 = None if u is None else _e164(u, plan)
    m.from_display = p.from_display
    m.from_user = p.from_user
    u = p.from_user
    m.from_user_e164 = None if u is None else _e164(u, plan)
    m.from_host = p.from_host
    m.from_tag = p.from_tag
    m.to_display = p.to_display
    m.to_user = p.to_user
    u = p.to_user
    m.to_user_e164 = None if u is None else _e164(u, plan)
    m.to_host = p.to_host
    m.to_tag = p.to_tag
    m.pai_user = p.pai_user
    u = p.pai_user
    m.pai_user_e164 = None if u is None else _e164(u, plan)
    m.diversion_user = p.diversion_user
    u = p.diversion_user
    m.diversion_user_e164 = None if u is None else _e164(u, plan)
    m.contact = p.contact
    if p.is_request:
        m.user_agent = p.user_agent if p.user_agent is not None else p.server
    else:
        m.user_agent = p.server if p.server is not None else p.user_agent
    m.via_branch = p.via_branch
    m.via_count = p.via_count
    m.max_forwards = p.max_forwards
    m.expires = p.expires if p.expires is not None else p.contact_expires
    m.auth_user = p.auth_user
    m.q850_cause = p.q850_cause
    m.reason_text = p.reason_text
    m.correlation_id = correlation_id or p.correlation_id
    m.content_type = p.content_type
    m.sdp = p.sdp
    return m
