"""ParsedSip + capture metadata -> the wire record :class:`sipscope.records.SipMessage`. Pure.

:func:`to_record` builds the record from a :class:`~producers.sip_parser.ParsedSip`;
:func:`native_record` is the capture fast path's ``to_record(parse_sip(data, ...), ...)`` in one call to
the native core (``sipscope_sipcore.RecordBuilder``, see :func:`native_builder`): the same record, built
natively, without the ``ParsedSip``, its headers dict and body that the record does not use. It returns
None when the core is not installed or declines the message; the caller then uses ``parse_sip`` and
``to_record``.
"""

from __future__ import annotations

from functools import lru_cache

from producers.sip_parser import ParsedSip
from sipscope.numbers import NumberPlan, normalise
from sipscope.records import SdpSummary, SipMessage, message_id

try:  # the optional native core (producers/sipcore, built by `make setup`)
    from sipscope_sipcore import RecordBuilder as _RecordBuilder
except ImportError:  # pragma: no cover - depends on the installation
    _RecordBuilder = None

NATIVE_RECORD: bool = _RecordBuilder is not None
"""Whether :func:`native_record` can build records (the native core is installed)."""

E164_MEMO_SIZE = 65536
"""Entries of each :class:`E164Memo` before it starts over."""


class E164Memo(dict):
    """``memo[user]`` = :func:`sipscope.numbers.normalise` ``(user, plan)`` for one plan, memoised.

    ``normalise`` is pure and the same users recur in every message of a dialog and across calls; a hit
    is one dict lookup (an ``lru_cache`` keyed by ``(user, plan)`` hashes the plan on every call).
    """

    __slots__ = ("plan",)
    size = E164_MEMO_SIZE
    """Entries before it starts over (the native core's builder, which fills it for the usual digit forms
    without calling ``__missing__``, reads it here)."""

    def __init__(self, plan: NumberPlan) -> None:
        super().__init__()
        self.plan = plan

    def __missing__(self, user: str) -> str | None:
        if len(self) >= self.size:
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
    e164 = e164_memo(plan)
    # Required fields by keyword, the rest by attribute: msgspec binds 45 keywords ~3x slower.
    m = SipMessage(ts=ts, src_ip=src_ip, src_port=src_port, dst_ip=dst_ip, dst_port=dst_port,
                   transport=transport.lower(), is_request=p.is_request, call_id=p.call_id, cseq_num=p.cseq_num,
                   cseq_method=p.cseq_method, raw=raw.decode("utf-8", "replace"))
    m.id = message_id(node, ts, src_ip, src_port, dst_ip, dst_port, raw)
    m.node = node
    m.direction = direction
    m.method = p.method
    m.status_code = p.status_code
    m.reason = p.reason
    m.ruri = p.ruri
    m.ruri_user = p.ruri_user
    m.from_display = p.from_display
    m.from_user = p.from_user
    m.from_host = p.from_host
    m.from_tag = p.from_tag
    m.to_display = p.to_display
    m.to_user = p.to_user
    m.to_host = p.to_host
    m.to_tag = p.to_tag
    m.pai_user = p.pai_user
    m.diversion_user = p.diversion_user
    for user, field in ((p.ruri_user, "ruri_user_e164"), (p.from_user, "from_user_e164"),
                        (p.to_user, "to_user_e164"), (p.pai_user, "pai_user_e164"),
                        (p.diversion_user, "diversion_user_e164")):
        if user is not None:
            setattr(m, field, e164[user])
    m.contact = p.contact
    m.user_agent = user_agent
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


# Every optional field at its default: the native builder starts each record as a copy of these.
_TEMPLATE = SipMessage(ts=0.0, src_ip="", src_port=0, dst_ip="", dst_port=0, transport="", is_request=False,
                       call_id="", cseq_num=0, cseq_method="", raw="")
_SDP_TEMPLATE = SdpSummary()


@lru_cache(maxsize=64)
def native_builder(correlation_headers: tuple[str, ...], node: str, plan: NumberPlan):
    """The native core's record builder for one capture configuration, or None without the core.

    ``builder.build(data, ts, src_ip, src_port, dst_ip, dst_port, transport)`` is
    ``to_record(parse_sip(data, correlation_headers), ts=ts, ..., node=node, plan=e164.plan)`` in one call
    (positional arguments: this is the per-message path), or None when the core declines the message. It
    may raise on odd arguments, or panic (a BaseException): callers treat both as a decline.
    """
    if _RecordBuilder is None:
        return None
    return _RecordBuilder(_TEMPLATE, _SDP_TEMPLATE, e164_memo(plan), correlation_headers, node)


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
    native core in one call, or None when the core is not installed or declines the message. ``e164`` is
    :func:`e164_memo` of the number plan. (The capture loop calls :func:`native_builder`'s ``build``.)
    """
    builder = native_builder(tuple(correlation_headers), node, e164.plan)
    if builder is None:
        return None
    try:
        return builder.build(data, ts, src_ip, src_port, dst_ip, dst_port, transport)
    except BaseException as exc:  # noqa: BLE001 - as in parse_sip: a panic in the core (a BaseException) or
        # odd arguments; the Python path decides, bad input never stops a stage
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        return None
