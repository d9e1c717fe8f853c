"""The wire records: one versioned record per Kafka topic, defined once, imported by every stage.

Records are ``msgspec.Struct`` classes (fast JSON encode/decode, typed, slotted). Each carries a
schema version ``v``; a consumer that receives a newer major version sends the message to
``sip.rejected`` with reason ``unsupported_schema_version`` rather than guessing.

Topics and their records:

=====================  ==========================  =============================================
topic                  record                      key
=====================  ==========================  =============================================
``sip.messages``       :class:`SipMessage`         Call-ID (so one call's messages stay ordered)
``sip.rejected``       :class:`Rejected`           source stage name
=====================  ==========================  =============================================

Later stages (calls, registrations, stats, alerts) add their records here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

SIP_MESSAGE_VERSION = 1
REJECTED_VERSION = 1


class SdpSummary(msgspec.Struct, omit_defaults=True, kw_only=True):
    """What a support engineer needs from an SDP body; the full body stays in ``SipMessage.raw``."""

    media_ip: str | None = None
    """Connection address (``c=`` line, media level wins over session level)."""
    audio_port: int | None = None
    """Port of the first ``m=audio`` line (0 means the stream was declined)."""
    video_port: int | None = None
    """Port of the first ``m=video`` line, if any."""
    codecs: list[str] = []
    """Codec names of the first audio stream in offer order, e.g. ``["PCMA/8000", "telephone-event/8000"]``."""
    direction: str | None = None
    """``sendrecv``, ``sendonly``, ``recvonly`` or ``inactive`` (media level wins over session level)."""


class SipMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One SIP message as seen on the wire by one capture point. Topic ``sip.messages``, key = ``call_id``.

    Every stage reads this record; every field is documented here and mapped in
    ``infra/elasticsearch/templates/sip-messages.json``.
    """

    v: int = SIP_MESSAGE_VERSION
    """Schema version of this record."""
    id: str = ""
    """Stable id of this observation: hash of node, capture time, addresses and raw bytes. Used as the
    Elasticsearch document id, so a replay or an at-least-once redelivery never duplicates a message."""
    ts: float
    """Capture time from the packet (pcap timestamp, HEP time chunks), seconds since the epoch, UTC.
    Never the wall clock of the agent."""
    src_ip: str
    """Source IP address (IPv4 dotted or IPv6 compressed form)."""
    src_port: int
    """Source transport port."""
    dst_ip: str
    """Destination IP address."""
    dst_port: int
    """Destination transport port."""
    transport: str
    """``udp``, ``tcp``, ``tls``, ``sctp`` or ``ws``/``wss``."""
    node: str = ""
    """Capture node id: the agent's configured name, or HEP capture id / node name."""
    direction: str = ""
    """``in`` or ``out`` relative to the capture node when known (HEP or configured local addresses), else empty."""
    is_request: bool
    """True for requests, False for responses."""
    method: str | None = None
    """Request method (``INVITE``, ``REGISTER``...), requests only."""
    status_code: int | None = None
    """Response status code, responses only."""
    reason: str | None = None
    """Response reason phrase, responses only."""
    ruri: str | None = None
    """Request-URI as sent, requests only."""
    ruri_user: str | None = None
    """User part of the Request-URI, raw."""
    ruri_user_e164: str | None = None
    """User part of the Request-URI normalised to E.164 digits (no ``+``); None when not a phone number."""
    call_id: str
    """Call-ID header value."""
    cseq_num: int
    """CSeq sequence number."""
    cseq_method: str
    """CSeq method (for responses: the method of the request answered)."""
    from_display: str | None = None
    """Display name of the From header, unquoted."""
    from_user: str | None = None
    """User part of the From URI, raw."""
    from_user_e164: str | None = None
    """User part of the From URI in E.164 digits."""
    from_host: str | None = None
    """Host part of the From URI."""
    from_tag: str | None = None
    """From tag."""
    to_display: str | None = None
    """Display name of the To header, unquoted."""
    to_user: str | None = None
    """User part of the To URI, raw."""
    to_user_e164: str | None = None
    """User part of the To URI in E.164 digits."""
    to_host: str | None = None
    """Host part of the To URI."""
    to_tag: str | None = None
    """To tag (absent on an initial request)."""
    pai_user: str | None = None
    """User part of the first P-Asserted-Identity (or Remote-Party-ID when no PAI), raw."""
    pai_user_e164: str | None = None
    """``pai_user`` in E.164 digits."""
    diversion_user: str | None = None
    """User part of the first Diversion (or History-Info) entry, raw."""
    diversion_user_e164: str | None = None
    """``diversion_user`` in E.164 digits."""
    contact: str | None = None
    """First Contact URI."""
    user_agent: str | None = None
    """User-Agent header (requests) or Server header (responses); either when only one is present."""
    via_branch: str | None = None
    """Branch parameter of the topmost Via (transaction id)."""
    via_count: int = 0
    """Number of Via entries (hops so far)."""
    max_forwards: int | None = None
    """Max-Forwards value."""
    expires: int | None = None
    """Expires header, or the ``expires`` parameter of the first Contact."""
    auth_user: str | None = None
    """``username`` of the Authorization / Proxy-Authorization header (REGISTER brute force, fraud)."""
    q850_cause: int | None = None
    """Q.850 cause from a ``Reason: Q.850;cause=N`` header."""
    reason_text: str | None = None
    """``text`` of the Reason header."""
    correlation_id: str | None = None
    """Id linking the legs of one call through a B2BUA/SBC: HEP correlation chunk, else the first
    configured correlation header present (``X-CID``, P-Charging-Vector ``icid-value``, Session-ID...)."""
    content_type: str | None = None
    """Content-Type of the body."""
    sdp: SdpSummary | None = None
    """Summary of an SDP body (also found inside multipart bodies)."""
    raw: str
    """The whole SIP message as captured, decoded as UTF-8 with invalid bytes replaced."""


class Rejected(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Input a stage could not use. Topic ``sip.rejected``. Nothing bad is dropped silently."""

    v: int = REJECTED_VERSION
    stage: str
    """Stage that rejected it: ``capture``, ``hep``, ``correlator``, ``indexer``..."""
    reason: str
    """Stable snake_case reason, e.g. ``missing_call_id``, ``bad_content_length``, ``hep_bad_length``."""
    detail: str = ""
    """Human-readable detail of the error."""
    ts: float | None = None
    """Capture time of the input when known."""
    src_ip: str | None = None
    src_port: int | None = None
    dst_ip: str | None = None
    dst_port: int | None = None
    node: str = ""
    raw_b64: str = ""
    """The offending bytes, base64."""


def message_id(node: str, ts: float, src_ip: str, src_port: int, dst_ip: str, dst_port: int, raw: bytes) -> str:
    """Stable id for one observation of one message (see :attr:`SipMessage.id`)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{node}|{ts:.6f}|{src_ip}|{src_port}|{dst_ip}|{dst_port}|".encode())
    h.update(raw)
    return h.hexdigest()


_encoder = msgspec.json.Encoder()
_decoders: dict[type, msgspec.json.Decoder] = {}


def encode(record: msgspec.Struct) -> bytes:
    """Record -> JSON bytes (the wire format of every sip.* topic)."""
    return _encoder.encode(record)


def decode(data: bytes, cls: type[Any]) -> Any:
    """JSON bytes -> record; raises ``msgspec.ValidationError``/``msgspec.DecodeError`` on bad input."""
    dec = _decoders.get(cls)
    if dec is None:
        dec = _decoders[cls] = msgspec.json.Decoder(cls)
    return dec.decode(data)


def to_dict(record: msgspec.Struct) -> dict[str, Any]:
    """Record -> plain dict (for JSON lines output and Elasticsearch documents)."""
    return msgspec.to_builtins(record)
