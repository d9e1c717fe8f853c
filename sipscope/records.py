"""The wire records: one versioned record per Kafka topic, defined once, imported by every stage.

Records are ``msgspec.Struct`` classes (fast JSON encode/decode, typed, slotted). Each carries its
schema version in the JSON field ``v`` (msgspec's tag field: always written, checked when decoding); a
consumer that receives another version cannot decode it and sends the message to ``sip.rejected`` with
reason ``unsupported_schema_version`` or ``bad_record`` rather than guessing.

Topics and their records:

=====================  ==========================  =============================================
topic                  record                      key
=====================  ==========================  =============================================
``sip.messages``       :class:`SipMessage`         Call-ID (so one call's messages stay ordered)
``sip.rejected``       :class:`Rejected`           source stage name
``sip.calls``          :class:`CallSummary`        Call-ID
``sip.registrations``  :class:`Registration`       Call-ID
``sip.stats``          :class:`StatsRow`           ``scope|key``
``sip.alerts``         :class:`Alert`              ``name|subject``
=====================  ==========================  =============================================
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

SIP_MESSAGE_VERSION = 1
REJECTED_VERSION = 1


class SdpSummary(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False):
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


class SipMessage(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False, tag_field="v", tag=SIP_MESSAGE_VERSION):
    """One SIP message as seen on the wire by one capture point. Topic ``sip.messages``, key = ``call_id``.

    Every stage reads this record; every field is documented here and mapped in
    ``infra/elasticsearch/templates/sip-messages.json``.
    """

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


class Rejected(msgspec.Struct, omit_defaults=True, kw_only=True, tag_field="v", tag=REJECTED_VERSION):
    """Input a stage could not use. Topic ``sip.rejected``. Nothing bad is dropped silently."""

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


# ---------------------------------------------------------------------------------------------------------
# Results of the stream processors (streams/): calls, registrations, KPIs, alerts.

CALL_SUMMARY_VERSION = 1
REGISTRATION_VERSION = 1
STATS_VERSION = 1
ALERT_VERSION = 1


class CallSummary(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False, tag_field="v", tag=CALL_SUMMARY_VERSION):
    """One call leg (one dialog = one Call-ID). Topic ``sip.calls``, key = ``call_id``.

    Published once as final (``final=True``) when the call ends or times out; long calls may also get
    interim updates (``final=False``) with the same ``id``, so the index keeps only the newest state.
    Outcomes are defined in ``streams/outcomes.py``; timings follow RFC 6076 (see field docs).
    """

    id: str
    """Stable id: hash of call-id and the first INVITE's capture time (same on every replay)."""
    call_id: str
    """Call-ID of this leg."""
    correlation_id: str | None = None
    """Links the legs of one call through a B2BUA/SBC (HEP correlation id, X-CID..., or the heuristic)."""
    final: bool = True
    """False for an interim update of a call still in progress."""
    outcome: str
    """answered, busy, no_answer, cancelled, rejected, failed, redirected, unauthorized, incomplete."""
    state: str = ""
    """Last dialog state: trying, ringing, answered, confirmed, terminated, expired."""
    end_reason: str = ""
    """Why the summary was closed: ``bye``, ``final_response``, ``cancel``, ``timeout_no_final``,
    ``timeout_no_bye``, ``capture_end``."""
    start_ts: float
    """Capture time of the first INVITE (t1 of RFC 6076; retransmissions never reset it)."""
    end_ts: float
    """Capture time of the last message of the leg."""
    caller: str | None = None
    """From user, raw."""
    caller_e164: str | None = None
    callee: str | None = None
    """To user (or Request-URI user when To has none), raw."""
    callee_e164: str | None = None
    ruri: str | None = None
    ruri_user: str | None = None
    ruri_user_e164: str | None = None
    pai_user: str | None = None
    pai_user_e164: str | None = None
    diversion_user: str | None = None
    diversion_user_e164: str | None = None
    src_ip: str | None = None
    """Source address of the first INVITE."""
    dst_ip: str | None = None
    """Destination address of the first INVITE."""
    src_trunk: str | None = None
    """Trunk/carrier name of src_ip from the alias map in settings."""
    dst_trunk: str | None = None
    hosts: list[str] = []
    """Every ``ip:port`` that sent or received a message of this leg, in order of first appearance (the
    hops of a proxy chain share the Call-ID and are merged into this one leg)."""
    caller_agent: str | None = None
    """User-Agent of the first INVITE."""
    callee_agent: str | None = None
    """Server/User-Agent of the first response from the far end."""
    invite_ts: float | None = None
    first_provisional_ts: float | None = None
    """First non-100 provisional response (18x)."""
    ringing_ts: float | None = None
    """First 180/183."""
    answer_ts: float | None = None
    """First 2xx to the INVITE."""
    ack_ts: float | None = None
    bye_ts: float | None = None
    bye_ok_ts: float | None = None
    final_ts: float | None = None
    """Time of the final response to the initial INVITE."""
    final_status: int | None = None
    """Final status code answering the initial INVITE (None when there was none)."""
    final_reason: str | None = None
    q850_cause: int | None = None
    """Q.850 cause from a Reason header (BYE/CANCEL/final response)."""
    hangup_by: str | None = None
    """``caller`` or ``callee`` (who sent BYE or CANCEL), None when unknown."""
    srd_success_ms: float | None = None
    """RFC 6076 Session Request Delay, successful setup: INVITE to first non-100 provisional, else 200."""
    srd_failure_ms: float | None = None
    """RFC 6076 Session Request Delay, failed setup: INVITE to the failure response."""
    sdd_ms: float | None = None
    """RFC 6076 Session Disconnect Delay: BYE to its 2xx."""
    duration_s: float | None = None
    """RFC 6076 Session Duration Time: 200 to BYE (or to expiry)."""
    ring_time_s: float | None = None
    """First 18x to answer or to the final failure/cancel."""
    pdd_ms: float | None = None
    """Post-dial delay as carriers use it: first INVITE to first 18x (else final response)."""
    messages: int = 0
    """Messages of the leg (retransmissions and duplicate capture points excluded)."""
    retransmissions: int = 0
    """Retransmitted requests/responses seen (same Call-ID, CSeq, method/status, direction)."""
    duplicates: int = 0
    """The same packet reported again by another capture point within the dedup window."""
    codecs: list[str] = []
    """Codecs of the first SDP offer."""
    answer_codecs: list[str] = []
    """Codecs of the SDP answer."""
    nodes: list[str] = []
    """Capture nodes that saw the leg."""


class Registration(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False, tag_field="v", tag=REGISTRATION_VERSION):
    """One REGISTER transaction chain (401/407 challenge and its retry joined). Topic ``sip.registrations``."""

    id: str
    """Stable id: hash of Call-ID and the first REGISTER's capture time."""
    call_id: str
    start_ts: float
    """First REGISTER of the chain."""
    end_ts: float
    aor: str | None = None
    """Address of record (To URI user@host)."""
    user: str | None = None
    """To user, raw."""
    user_e164: str | None = None
    contact: str | None = None
    expires: int | None = None
    """Granted expiry (from the 200's Contact/Expires, else the request's); 0 = de-registration."""
    user_agent: str | None = None
    auth_user: str | None = None
    src_ip: str | None = None
    src_port: int | None = None
    dst_ip: str | None = None
    outcome: str
    """``ok``, ``unregistered`` (expires 0 accepted), ``failed`` (final >= 300 other than a challenge),
    ``challenged`` (401/407 never answered by a retry), ``timeout`` (no final response)."""
    final_status: int | None = None
    challenges: int = 0
    """401/407 responses in the chain."""
    attempts: int = 0
    """REGISTER requests in the chain (retransmissions excluded)."""
    rrd_ms: float | None = None
    """RFC 6076 Registration Request Delay: first REGISTER to the final 200 (successful chains only)."""


class StatsRow(msgspec.Struct, omit_defaults=True, kw_only=True, tag_field="v", tag=STATS_VERSION):
    """KPIs of one minute for one scope (all / trunk / source / destination). Topic ``sip.stats``.

    Definitions (RFC 6076, ITU-T E.411/E.425) are documented in ``streams/kpis.py``.
    """

    id: str
    """Stable id: hash of minute, scope and key."""
    ts: float
    """Start of the minute (epoch seconds, event time)."""
    scope: str
    """``all``, ``trunk``, ``src`` or ``dst``."""
    key: str
    """Trunk name or IP address; ``*`` for scope ``all``."""
    attempts: int = 0
    """Initial INVITEs (no retransmissions, no re-INVITEs)."""
    cps: float = 0.0
    """attempts / 60."""
    concurrent_max: int = 0
    """Most calls in progress (answered, not yet ended) at any time in the minute."""
    answered: int = 0
    busy: int = 0
    no_answer: int = 0
    cancelled: int = 0
    rejected: int = 0
    failed: int = 0
    asr: float | None = None
    ner: float | None = None
    ser: float | None = None
    seer: float | None = None
    isa: float | None = None
    acd_s: float | None = None
    pdd_p50_ms: float | None = None
    pdd_p95_ms: float | None = None
    responses: dict[str, int] = {}
    """Final response counts by code, e.g. ``{"200": 10, "486": 2}``."""
    registrations_ok: int = 0
    registrations_failed: int = 0
    messages: int = 0


class Alert(msgspec.Struct, omit_defaults=True, kw_only=True, tag_field="v", tag=ALERT_VERSION):
    """An anomaly alert or its resolution. Topic ``sip.alerts``, key = ``name|subject``."""

    id: str
    """Stable id of this event (hash of name, subject, window start and status)."""
    alert_id: str
    """Id shared by the ``open`` event and its ``resolved`` event."""
    name: str
    """Stable snake_case detector name, e.g. ``registration_bruteforce``."""
    status: str = "open"
    """``open`` or ``resolved``."""
    severity: str = "warning"
    """``info``, ``warning`` or ``critical``."""
    subject_type: str
    """``ip``, ``trunk``, ``number``, ``prefix``, ``user_agent``."""
    subject: str
    ts: float
    """Event time at which the alert opened (or resolved)."""
    window_start: float
    window_end: float
    observed: float
    """The measured value that triggered it."""
    threshold: float | None = None
    baseline: float | None = None
    description: str = ""
    evidence: list[str] = []
    """A few example Call-IDs."""


def stable_id_python(*parts: object) -> str:
    """Deterministic id from parts (the same input on every replay gives the same id): blake2b-128 hex of
    each part's ``format(p, "")`` followed by a unit separator, in UTF-8."""
    # one update of every part followed by a unit separator (the same bytes as one update per piece)
    return hashlib.blake2b("".join([f"{p}\x1f" for p in parts]).encode(), digest_size=16).hexdigest()


try:  # the optional native core (producers/sipcore): the same ids, spelled and hashed without Python objects
    from sipscope_sipcore import stable_id
except ImportError:  # pragma: no cover - depends on the installation
    stable_id = stable_id_python
