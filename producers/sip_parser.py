"""Pure SIP parser (RFC 3261 as real devices send it) and a stream framer for TCP/TLS.

Bytes in, a :class:`ParsedSip` (or a list of framed messages) out. No I/O, settings, logging or
mutable globals: the caller passes what it needs (the correlation header names) as arguments.

Public API
----------
``parse_sip(data, correlation_headers=()) -> ParsedSip``
    One SIP message from a datagram (UDP/SCTP/WS/HEP payload) or from :func:`frame_stream`.
``parse_sip_python(data, correlation_headers=())``
    The same by the pure-Python parser only. ``parse_sip`` first tries the optional native core
    (``sipscope_sipcore``, ``producers/sipcore``; :data:`NATIVE` says whether it is installed): it
    handles the common well-formed message and declines anything else (then Python parses it), with
    results equal to the Python parser's (tests/producers/test_sipcore.py checks it differentially).
``frame_stream(buf, *, max_header=65536, max_body=1048576) -> Framed``
    Cut a TCP/TLS byte stream into messages: ``Framed(messages, consumed, garbage)``, a 3-tuple whose
    ``garbage`` lists the skipped non-SIP chunks (see :class:`Framed`).
``SipParseError(reason, detail)``
    The only exception either function raises (``frame_stream`` raises none at all).

Error reasons (``SipParseError.reason``, stable snake_case names used in ``sip.rejected``)
---------------------------------------------------------------------------------------
=======================  ======================================================================
``empty``                no bytes, or only CR/LF/space (a keep-alive)
``binary_junk``          control bytes (NUL, ...) in the start line: binary data (STUN, TLS, RTP...), not text
``not_sip``              the first line is not SIP at all (no ``SIP/`` in it: HTTP, scanners' noise)
``bad_start_line``       mentions SIP but is neither ``Method SP URI SP SIP/x.y`` nor ``SIP/x.y SP code SP reason``
                         (e.g. ``<>`` around the Request-URI or LWS inside it, RFC 4475 3.1.2.7/3.1.2.8)
``unsupported_version``  a well-formed start line whose version is not SIP/2.0 (RFC 4475 3.1.2.16)
``bad_status_code``      status code is not three digits in 100..699
``header_too_long``      one header field (unfolded) longer than 16 KiB, or a header block over 64 KiB
``missing_call_id``      no (non-empty) Call-ID header
``missing_cseq``         no CSeq header
``bad_cseq``             CSeq is not ``number method`` with 0 <= number < 2**32
``bad_content_length``   Content-Length is not a non-negative integer of at most 9 digits
``truncated_body``       Content-Length larger than the bytes that follow the header block
``internal_error``       a bug in this parser (never expected; the property tests look for it)
=======================  ======================================================================

Anomalies that do not stop parsing are listed in :attr:`ParsedSip.notes`: ``leading_crlf``,
``bare_lf``, ``no_blank_line``, ``missing_content_length``, ``trailing_bytes``, ``malformed_header_line``,
``duplicate_header``, ``conflicting_content_length``, ``cseq_method_mismatch``, ``bad_max_forwards``,
``bad_expires``, ``lws_in_start_line``, ``missing_from``, ``missing_to``, ``missing_via``.

Parsing rules worth knowing
---------------------------
* Header names are case-insensitive and compact forms are expanded (:data:`COMPACT_FORMS`); folded
  lines (CRLF + SP/HTAB) are unfolded to one space. Values are stripped; raw user parts stay escaped.
* Repeated list headers (Via, Contact, Route, Record-Route, Reason, History-Info, P-Asserted-Identity,
  Remote-Party-ID, Diversion) are joined with ``,`` as RFC 3261 7.3.1 allows; for other headers the
  first occurrence wins. List elements are split on commas outside ``"..."`` and ``<...>``.
* From/To are single-valued: an unquoted comma in their display name is tolerated (RFC 4475 3.1.2.15),
  so are spaces inside ``<...>`` (3.1.2.14) and an unterminated or backslashed quote in a display name.
* Extra SP between or after the request-line elements is tolerated with the note ``lws_in_start_line``
  (RFC 4475 3.1.2.9/3.1.2.10).
* Control characters are refused only in the start line (``binary_junk``); in header values they are
  kept (RFC 4475 3.1.1.2 quotes NUL/BEL/DEL, and some PBXs send garbage bytes in tags).
* The line-end style is taken from the message: CRLF CRLF ends the headers; only when there is none is a
  bare-LF (``LF LF``, or sloppy ``CRLF LF``) end looked for (note ``bare_lf``).
* A datagram without Content-Length takes the rest of the datagram as body; bytes after the
  Content-Length body are ignored (:attr:`ParsedSip.trailing`, note ``trailing_bytes``).
* The SDP summary is made only for ``application/sdp`` bodies and for the first ``application/sdp``
  part of a ``multipart/*`` body.

Speed
-----
One ``bytes.find`` splits headers from body, the header block is decoded and split into lines once,
each usual header name costs one dict lookup (:data:`COMPACT_FORMS` and common spellings are
precomputed), and precompiled regular expressions run only on the few values the record needs.
The pure sub-parsers that read name-addrs and URIs (From/To, Contact/P-Asserted-Identity/Diversion,
Request-URI) and SDP bodies are memoised with bounded ``functools.lru_cache`` tables
(:data:`ADDRESS_CACHE_SIZE`, :data:`SDP_CACHE_SIZE` entries; values longer than :data:`MEMO_MAX_VALUE`
/ :data:`MEMO_MAX_SDP` are not kept): the same header values recur in every
message of a dialog, the same SDP in retransmissions and on both sides of a proxy, and a memo of a
pure function never changes a result (:func:`clear_caches` empties them, e.g. for cold benchmarks).
Each call still gets its own mutable objects; no other state is kept between calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from sipscope.records import SdpSummary

try:  # the optional native core (producers/sipcore, built by `make setup`): same results, faster
    from sipscope_sipcore import parse as _native_parse
except ImportError:  # pragma: no cover - depends on the installation
    _native_parse = None

NATIVE: bool = _native_parse is not None
"""Whether :func:`parse_sip` uses the native core (``sipscope_sipcore``) for the messages it handles."""

_F = TypeVar("_F", bound=Callable[..., Any])

MAX_HEADER_FIELD = 16 * 1024
"""Longest header field (after unfolding) accepted by :func:`parse_sip`."""
MAX_HEADER_BLOCK = 64 * 1024
"""Largest header block accepted by :func:`parse_sip` and waited for by :func:`frame_stream`."""
MAX_STREAM_BODY = 1024 * 1024
"""Largest Content-Length :func:`frame_stream` waits for by default."""
MAX_START_LINE = 8 * 1024
"""Longest start line :func:`frame_stream` waits for before calling the bytes garbage."""
ADDRESS_CACHE_SIZE = 8192
"""Entries of each memo of the pure address/URI sub-parsers (see "Speed" in the module docstring)."""
SDP_CACHE_SIZE = 1024
"""Entries of the memo of SDP summaries, keyed by the body bytes."""
MEMO_MAX_VALUE = 512
"""Longer header values are parsed without being memoised (bounds the memos' memory to a few MB)."""
MEMO_MAX_SDP = 4096
"""Longer SDP bodies are summarised without being memoised."""

COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",  # RFC 3841
    "b": "referred-by",  # RFC 3892
    "c": "content-type",
    "d": "request-disposition",  # RFC 3841
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",  # RFC 3841
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",  # RFC 4474
    "o": "event",  # RFC 6665
    "r": "refer-to",  # RFC 3515
    "s": "subject",
    "t": "to",
    "u": "allow-events",  # RFC 6665
    "v": "via",
    "x": "session-expires",  # RFC 4028
    "y": "identity",  # RFC 4474/8224
}
"""Compact header names (RFC 3261 7.3.3 and the IANA SIP header registry) -> full lower-case names."""

_COMBINED = frozenset(
    (
        "via",
        "contact",
        "route",
        "record-route",
        "reason",
        "history-info",
        "p-asserted-identity",
        "remote-party-id",
        "diversion",
    )
)
_SINGLE = frozenset(("call-id", "cseq", "from", "to", "max-forwards", "content-length"))

STATIC_PAYLOAD_TYPES: dict[str, str] = {
    "0": "PCMU/8000",
    "3": "GSM/8000",
    "4": "G723/8000",
    "5": "DVI4/8000",
    "6": "DVI4/16000",
    "7": "LPC/8000",
    "8": "PCMA/8000",
    "9": "G722/8000",
    "10": "L16/44100/2",
    "11": "L16/44100",
    "12": "QCELP/8000",
    "13": "CN/8000",
    "14": "MPA/90000",
    "15": "G728/8000",
    "16": "DVI4/11025",
    "17": "DVI4/22050",
    "18": "G729/8000",
}
"""RTP/AVP static audio payload types (RFC 3551 table 4), used when an SDP has no rtpmap for them."""


class SipParseError(Exception):
    """Input that is not a usable SIP message. ``reason`` is a stable snake_case name (module docstring)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class ParsedSip:
    """What :func:`parse_sip` extracts from one message. Strings are as on the wire unless noted."""

    raw: bytes
    """The input bytes, whole (leading CRLFs and trailing bytes included)."""
    is_request: bool
    call_id: str
    cseq_num: int
    cseq_method: str
    headers: dict[str, str]
    """Every header by full lower-case name (compact forms expanded), value stripped: the first
    value, or all values joined with ``, `` for the list headers named in the module docstring."""
    notes: list[str]
    """Anomaly names (module docstring), in the order found."""
    method: str | None = None
    ruri: str | None = None
    ruri_user: str | None = None
    ruri_host: str | None = None
    status_code: int | None = None
    reason: str | None = None
    """Reason phrase of a response (may be empty)."""
    from_display: str | None = None
    """Display names are unquoted and unescaped."""
    from_user: str | None = None
    from_host: str | None = None
    from_tag: str | None = None
    to_display: str | None = None
    to_user: str | None = None
    to_host: str | None = None
    to_tag: str | None = None
    pai_user: str | None = None
    """User of the first P-Asserted-Identity, else of the first Remote-Party-ID."""
    diversion_user: str | None = None
    """User of the first Diversion, else of the first History-Info entry when there are two or more."""
    contact: str | None = None
    """First Contact URI (``*`` for a REGISTER removing all bindings)."""
    contact_expires: int | None = None
    user_agent: str | None = None
    server: str | None = None
    via_branch: str | None = None
    via_count: int = 0
    max_forwards: int | None = None
    expires: int | None = None
    """Expires header only (see ``contact_expires`` for the Contact parameter)."""
    auth_user: str | None = None
    q850_cause: int | None = None
    reason_text: str | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    """Media type of the body, lower-case, without parameters (``multipart/mixed``)."""
    sdp: SdpSummary | None = None
    body: bytes = b""
    """The body (Content-Length bytes after the blank line)."""
    size: int = 0
    """Bytes of the message proper: start line to the end of the body."""
    trailing: int = 0
    """Bytes after the body that were ignored (datagrams)."""


class Framed(NamedTuple):
    """Result of :func:`frame_stream`."""

    messages: list[bytes]
    """Complete messages, in stream order, each exactly start line .. end of body."""
    consumed: int
    """Bytes of ``buf`` used up (messages, keep-alive CRLFs, garbage): drop them from the buffer."""
    garbage: list[bytes]
    """Chunks skipped while resynchronising on the next start line (send them to ``sip.rejected``)."""


# --- regular expressions and tables (built once at import) -----------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_LIST_ELEMENT = re.compile(r'(?:"[^"\\]*(?:\\.[^"\\]*)*"|<[^<>]*>|[^,"<])+')

# name-addr: "quoted" or token display name, then <scheme:userinfo@host...>, then header params.
# Groups: quoted display, token display, URI, scheme, userinfo, host, params. From/To are
# single-valued (params run to the end); list elements (Contact, PAI...) end at the next comma.
_NAME_ADDR = (
    r'[ \t]*(?:"([^"\\]*(?:\\.[^"\\]*)*)"[ \t]*|([^<>"]*))'
    r"<[ \t]*(([A-Za-z][A-Za-z0-9+.-]*):(?:([^@>]*)@)?(\[[^\]>]*\]|[^:;?> \t\[>]*)[^>]*)>"
)
_NAME_ADDR_SINGLE = re.compile(_NAME_ADDR + r"(.*)", re.DOTALL)
# From/To: the same, with the usual ";tag=" right after the name-addr caught in the same match
_FROM_TO = re.compile(_NAME_ADDR + r"(?:[ \t]*;[ \t]*tag=([^;,\s]+))?(.*)", re.DOTALL)
_NAME_ADDR_LIST = re.compile(_NAME_ADDR + r"([^,]*)", re.DOTALL)
# addr-spec without <>: its ;params are header params (RFC 3261 20.10). Groups: URI, scheme,
# userinfo, host, params.
_ADDR_SPEC = re.compile(
    r"[ \t]*(([A-Za-z][A-Za-z0-9+.-]*):(?:([^@;, \t]*)@)?(\[[^\]]*\]|[^:;?, \t\[]*)[^;, \t]*)([^,]*)"
)
# lenient fallback for display names with stray quotes/backslashes: display, URI, params
_LENIENT = re.compile(r"[ \t]*([^<>]*)<([^<>]*)>(.*)", re.DOTALL)
_URI_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_URI = re.compile(r"[ \t]*([A-Za-z][A-Za-z0-9+.-]*):(?:([^@]*)@)?(\[[^\]]*\]|[^:;?> \t\[]*)")

_TAG = re.compile(r";[ \t]*tag[ \t]*=[ \t]*([^\s;,]+)", re.IGNORECASE)
_BRANCH = re.compile(r";[ \t]*branch[ \t]*=[ \t]*([^\s;,]+)", re.IGNORECASE)
_EXPIRES_PARAM = re.compile(r";[ \t]*expires[ \t]*=[ \t]*([0-9]+)", re.IGNORECASE)
_CAUSE = re.compile(r";[ \t]*cause[ \t]*=[ \t]*([0-9]+)", re.IGNORECASE)
_TEXT = re.compile(r';[ \t]*text[ \t]*=[ \t]*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s;,]+))', re.IGNORECASE)
_USERNAME = re.compile(r'\busername[ \t]*=[ \t]*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s,]+))', re.IGNORECASE)
_ICID = re.compile(r'\bicid-value[ \t]*=[ \t]*(?:"([^"]*)"|([^\s;,]+))', re.IGNORECASE)
_BOUNDARY = re.compile(r';[ \t]*boundary[ \t]*=[ \t]*(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
# The SDP lines the summary needs, one alternative each: c= address; m= media, port, payload types;
# a=rtpmap: payload type, encoding; direction attribute.
_SDP_FIELDS = re.compile(
    r"\n(?:c=IN IP[46] +([^\s/]+)"
    r"|(m)=([A-Za-z]*)(?: +([0-9]+)[^ \r\n]*(?: +[^ \r\n]+([^\r\n]*))?)?"
    r"|a=rtpmap: *([0-9]+) +(\S+)"
    r"|a=(sendrecv|sendonly|recvonly|inactive)\b)"
)
_PART_SDP = re.compile(rb"^(?:content-type|c)[ \t]*:[ \t]*application/sdp", re.IGNORECASE | re.MULTILINE)
_PART_MULTIPART = re.compile(rb"^(?:content-type|c)[ \t]*:[ \t]*(multipart/[^\r\n]*)", re.IGNORECASE | re.MULTILINE)

_SIP_SCHEMES = frozenset(("sip", "sips", "SIP", "SIPS"))
_TEL_SCHEMES = frozenset(("tel", "TEL"))
_LEADING_SPACE = frozenset(b"\r\n \t")

_KNOWN_HEADERS = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "Feature-Caps",
    "From",
    "Geolocation",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Info-Package",
    "Join",
    "Max-Breadth",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Access-Network-Info",
    "P-Asserted-Identity",
    "P-Called-Party-ID",
    "P-Charging-Vector",
    "P-Early-Media",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Recv-Info",
    "Refer-Sub",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Remote-Party-ID",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Session-ID",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Target-Dialog",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
    "X-Call-ID",
    "X-CID",
)


def _spellings() -> dict[str, str]:
    """Usual spellings of known header names -> canonical lower-case name (one dict lookup per line)."""
    table: dict[str, str] = {}
    for name in _KNOWN_HEADERS:
        low = name.lower()
        title = "-".join(word.capitalize() for word in low.split("-"))
        for spelling in (name, low, name.upper(), title):
            table[spelling] = low
    for short, full in COMPACT_FORMS.items():
        table[short] = table[short.upper()] = full
    return table


_CANON = _spellings()


# --- small helpers ---------------------------------------------------------------------------------


def _header_end(data: bytes, start: int) -> tuple[int, int]:
    """(index of the blank line ending the headers, its length) from ``start``; (-1, 0) when none.

    The kind of line end is taken from the first line: CRLF messages end their headers with
    CRLF CRLF (or, sloppily, CRLF LF), bare-LF messages with LF LF.
    """
    eol = data.find(b"\n", start)
    if eol < 0:
        return -1, 0
    if eol > start and data[eol - 1] == 13:
        end = data.find(b"\r\n\r\n", eol - 1)
        if end >= 0:
            return end, 4
    end = data.find(b"\n\n", eol)
    return (end, 2) if end >= 0 else (-1, 0)


def _small_int(s: str, limit: int = 2**32) -> int | None:
    """Non-negative decimal of at most 10 ASCII digits below ``limit``, else None."""
    s = s.strip()
    if s.isdigit() and s.isascii() and len(s) <= 10:
        n = int(s)
        if n < limit:
            return n
    return None


def _unquote(q: str) -> str:
    return _UNESCAPE.sub(r"\1", q) if "\\" in q else q


def _user_host(scheme: str, userinfo: str | None, host: str) -> tuple[str | None, str | None]:
    """(user, host) of a parsed URI: sip/sips user without password; for tel the number is the user."""
    if scheme in _SIP_SCHEMES or scheme.lower() in ("sip", "sips"):
        if userinfo and ":" in userinfo:
            userinfo = userinfo.partition(":")[0]
        return (userinfo or None), (host or None)
    if scheme in _TEL_SCHEMES or scheme.lower() == "tel":
        return (host or None), None
    return None, None


def _memo(maxsize: int, max_len: int) -> Callable[[_F], _F]:
    """Bounded memo of a pure one-value parser; values longer than ``max_len`` are not kept."""

    def decorate(fn: _F) -> _F:
        cached = lru_cache(maxsize=maxsize)(fn)

        def call(value: Any, *args: Any) -> Any:
            if value is not None and len(value) > max_len:
                return fn(value, *args)
            return cached(value, *args)

        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        call.cache_info = cached.cache_info  # type: ignore[attr-defined]
        call.__wrapped__ = fn  # type: ignore[attr-defined]
        call.__doc__ = fn.__doc__
        return call  # type: ignore[return-value]

    return decorate


@_memo(ADDRESS_CACHE_SIZE, MEMO_MAX_VALUE)
def _uri_parts(uri: str | None) -> tuple[str | None, str | None]:
    """(user, host) of a sip:/sips:/tel: URI string; (None, None) for other schemes or junk."""
    if not uri:
        return None, None
    m = _URI.match(uri)
    if m is None:
        return None, None
    return _user_host(*m.groups())


_NO_ADDRESS: tuple[None, None, None, None, str] = (None, None, None, None, "")


@_memo(ADDRESS_CACHE_SIZE, MEMO_MAX_VALUE)
def _address(value: str, single: bool) -> tuple[str | None, str | None, str | None, str | None, str]:
    """(display, URI, user, host, header params) of the first name-addr/addr-spec of a header value."""
    m = (_NAME_ADDR_SINGLE if single else _NAME_ADDR_LIST).match(value)
    if m is not None:
        quoted, token, uri, scheme, userinfo, host, params = m.groups()
        display = _unquote(quoted) if quoted is not None else token.strip()
        if uri[-1:] in (" ", "\t"):
            uri = uri.rstrip()
    else:
        m = _ADDR_SPEC.match(value)
        if m is not None:
            uri, scheme, userinfo, host, params = m.groups()
            display = None
        else:
            m = _LENIENT.match(value)
            if m is None:
                return _NO_ADDRESS
            display, uri, params = m.groups()
            display = display.strip().strip('\\"').strip()
            uri = uri.strip()
            user, host = _uri_parts(uri)
            return (display or None), (uri or None), user, host, params
    if scheme in _SIP_SCHEMES:
        if userinfo and ":" in userinfo:
            userinfo = userinfo.partition(":")[0]
        return (display or None), uri, (userinfo or None), (host or None), params
    user, host = _user_host(scheme, userinfo, host)
    return (display or None), uri, user, host, params


@_memo(ADDRESS_CACHE_SIZE, MEMO_MAX_VALUE)
def _from_to(value: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(display, user, host, tag) of a From or To header value."""
    m = _FROM_TO.match(value)
    if m is None:
        display, _, user, host, params = _address(value, True)
        return display, user, host, (_param(params, ";tag=", _TAG) if params else None)
    quoted, token, _, scheme, userinfo, host, tag, params = m.groups()
    display = _unquote(quoted) if quoted is not None else token.strip()
    if tag is None and params:
        tag = _param(params, ";tag=", _TAG)
    if scheme in _SIP_SCHEMES:
        if userinfo and ":" in userinfo:
            userinfo = userinfo.partition(":")[0]
        return (display or None), (userinfo or None), (host or None), tag
    user, host = _user_host(scheme, userinfo, host)
    return (display or None), user, host, tag


def _param(params: str, fast: str, regex: re.Pattern[str]) -> str | None:
    """Value of a token parameter: ``fast`` is the usual spelling (``;tag=``), ``regex`` the general one."""
    i = params.find(fast)
    if i >= 0:
        value = params[i + len(fast) :].partition(";")[0].strip()
        if value and " " not in value and "," not in value:
            return value
    m = regex.search(params)
    return m.group(1) if m is not None else None


def _quoted_param(regex: re.Pattern[str], s: str) -> str | None:
    """Value of a parameter that may be a quoted string (unquoted and unescaped) or a token."""
    m = regex.search(s)
    if m is None:
        return None
    quoted, token = m.groups()
    return _unquote(quoted) if quoted is not None else token


def _elements(value: str) -> list[str]:
    """Comma-separated list elements, commas inside quotes and <...> kept."""
    parts = value.split(",") if '"' not in value and "<" not in value else _LIST_ELEMENT.findall(value)
    return [p for p in (x.strip() for x in parts) if p]


def _first_user(value: str | None) -> str | None:
    return _address(value, False)[2] if value else None


def _reason_header(value: str) -> tuple[int | None, str | None]:
    """(Q.850 cause, text) of a Reason header; the Q.850 element's text wins over others'."""
    cause: int | None = None
    text: str | None = None
    for element in _elements(value):
        proto = element.partition(";")[0].strip().upper()
        t = _quoted_param(_TEXT, element)
        if proto == "Q.850":
            m = _CAUSE.search(element)
            if m is not None and cause is None:
                cause = _small_int(m.group(1))
            if t is not None:
                return cause, t
        elif text is None and t is not None:
            text = t
    return cause, text


def _diversion(headers: dict[str, str]) -> str | None:
    """User of the first Diversion; else of the first History-Info entry when the call was retargeted."""
    div = headers.get("diversion")
    if div:
        return _first_user(div)
    hist = headers.get("history-info")
    if hist:
        entries = _elements(hist)
        if len(entries) >= 2:
            return _first_user(entries[0])
    return None


def _correlation(headers: dict[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        key = _CANON.get(name) or name.strip().lower()
        value = headers.get(key)
        if not value:
            continue
        cid = _quoted_param(_ICID, value) if key == "p-charging-vector" else value.partition(";")[0].strip()
        if cid:
            return cid
    return None


def _canonical(name: str) -> str | None:
    """Canonical key of an unusual header-name spelling; None when it is not a header name."""
    key = name.strip().lower()
    if not key or " " in key or "\t" in key:
        return None
    return COMPACT_FORMS.get(key, key)


# --- SDP -------------------------------------------------------------------------------------------


def _sdp(body: bytes) -> SdpSummary:
    """Summary of an SDP body: first audio stream's codecs/port/direction, media address, video port.

    Media-level ``c=`` and direction attributes of the first audio stream win over session-level ones.
    """
    media_ip, audio_port, video_port, codecs, direction = _sdp_fields(body)
    return SdpSummary(
        media_ip=media_ip, audio_port=audio_port, video_port=video_port, codecs=list(codecs), direction=direction
    )


@_memo(SDP_CACHE_SIZE, MEMO_MAX_SDP)
def _sdp_fields(body: bytes) -> tuple[str | None, int | None, int | None, tuple[str, ...], str | None]:
    """The SdpSummary fields of an SDP body (memoised: a fresh, mutable SdpSummary is built per message)."""
    session_c = audio_c = session_dir = audio_dir = None
    audio_port = video_port = None
    payloads: list[str] = []
    rtpmap: dict[str, str] = {}
    section = 0  # 0 session level, 1 first audio stream, 2 any other media stream
    for conn, m, media, port_s, fmts, pt, encoding, direction in _SDP_FIELDS.findall("\n" + body.decode("latin-1")):
        if pt:
            if section == 1 and pt not in rtpmap:
                rtpmap[pt] = encoding
        elif m:
            port = int(port_s) if port_s and len(port_s) <= 5 and int(port_s) < 65536 else None
            if media == "audio" and audio_port is None and port is not None:
                section, audio_port, payloads = 1, port, fmts.split()
            else:
                section = 2
                if media == "video" and video_port is None:
                    video_port = port
        elif conn:
            if section == 0:
                session_c = conn
            elif section == 1 and audio_c is None:
                audio_c = conn
        elif section == 0:
            session_dir = direction
        elif section == 1:
            audio_dir = direction
    return (
        audio_c or session_c,
        audio_port,
        video_port,
        tuple([rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(pt) or pt for pt in payloads]),
        audio_dir or session_dir,
    )


def _multipart_sdp(body: bytes, content_type: str, depth: int = 0) -> SdpSummary | None:
    """SDP summary of the first application/sdp part of a multipart body (one level of nesting)."""
    boundary = _quoted_param(_BOUNDARY, content_type)
    if not boundary or depth > 1:
        return None
    delim = b"--" + boundary.encode("utf-8", "replace")
    pos = body.find(delim)
    while pos >= 0:
        start = pos + len(delim)
        if body[start : start + 2] == b"--":
            break
        nxt = body.find(delim, start)
        part = body[start : nxt if nxt >= 0 else len(body)]
        he, sep = _header_end(part, 0)
        if he >= 0:
            part_headers, content = part[:he], part[he + sep :]
            if content.endswith(b"\r\n"):
                content = content[:-2]
            if _PART_SDP.search(part_headers):
                return _sdp(content)
            nested = _PART_MULTIPART.search(part_headers)
            if nested is not None:
                found = _multipart_sdp(content, nested.group(1).decode("latin-1"), depth + 1)
                if found is not None:
                    return found
        pos = nxt
    return None


# --- the parser ------------------------------------------------------------------------------------


def clear_caches() -> None:
    """Empty the memo tables of the address/URI sub-parsers (results never depend on them)."""
    _uri_parts.cache_clear()
    _address.cache_clear()
    _from_to.cache_clear()
    _sdp_fields.cache_clear()


def parse_sip(data: bytes | bytearray | memoryview, correlation_headers: Sequence[str] = ()) -> ParsedSip:
    """Parse one SIP message. Raises :class:`SipParseError` (and nothing else) on any input.

    ``correlation_headers``: header names, in order of preference, whose value becomes
    :attr:`ParsedSip.correlation_id` (``P-Charging-Vector`` gives its ``icid-value``; other headers give
    their value up to the first ``;``).

    Uses the native core (:data:`NATIVE`) when it is installed; it returns the same result as
    :func:`parse_sip_python` or declines (None), and then the Python parser runs.
    """
    if _native_parse is not None:
        raw = data if isinstance(data, bytes) else bytes(data)
        try:
            fields = _native_parse(raw, correlation_headers)
        except BaseException as exc:  # noqa: BLE001 - odd correlation names, or a panic in the core (pyo3's
            # PanicException is a BaseException): the Python path decides, bad input never stops a stage
            if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                raise
            fields = None
        if fields is not None:
            p = ParsedSip(raw, *fields)
            sdp = p.sdp
            if sdp is not None:
                media_ip, audio_port, video_port, codecs, direction = sdp
                p.sdp = SdpSummary(
                    media_ip=media_ip, audio_port=audio_port, video_port=video_port, codecs=codecs, direction=direction
                )
            return p
        data = raw
    return parse_sip_python(data, correlation_headers)


def parse_sip_python(data: bytes | bytearray | memoryview, correlation_headers: Sequence[str] = ()) -> ParsedSip:
    """:func:`parse_sip` by the pure-Python parser only (the reference the native core is tested against)."""
    try:
        return _parse(data if isinstance(data, bytes) else bytes(data), correlation_headers)
    except SipParseError:
        raise
    except Exception as exc:
        raise SipParseError("internal_error", f"{type(exc).__name__}: {exc}") from exc


def _parse(data: bytes, correlation_headers: Sequence[str]) -> ParsedSip:
    n = len(data)
    if n == 0:
        raise SipParseError("empty", "no bytes")
    notes: list[str] = []
    start = 0
    if data[0] in _LEADING_SPACE:
        stripped = data.lstrip(b"\r\n \t")
        if not stripped:
            raise SipParseError("empty", f"{n} bytes of whitespace (keep-alive)")
        start = n - len(stripped)
        notes.append("leading_crlf")

    head_end = data.find(b"\r\n\r\n", start)
    sep = 4
    if head_end < 0:
        head_end, sep = _header_end(data, start)
    if head_end < 0:
        head_end = body_start = n
        notes.append("no_blank_line")
    else:
        body_start = head_end + sep
        if sep == 2:
            notes.append("bare_lf")
    if head_end - start > MAX_HEADER_BLOCK:
        raise SipParseError("header_too_long", f"header block of {head_end - start} bytes")

    text = data[start:head_end].decode("utf-8", "replace")
    if body_start == n == head_end:
        text = text.rstrip("\r\n")
    eol = text.find("\n")
    if eol < 0:
        line, rest = text, ""
    else:
        line, rest = text[:eol], text[eol + 1 :]
        if line[-1:] == "\r":
            line = line.rstrip("\r")

    p = ParsedSip(data, True, "", 0, "", {}, notes)
    if not line.isprintable():
        junk = _CONTROL.search(line)
        if junk is not None:
            raise SipParseError("binary_junk", f"control character 0x{ord(junk.group()):02x} in the first line")
    _start_line(line, p)

    # header fields: one dict lookup per usual line; folded lines and odd spellings take a detour
    headers = p.headers
    if rest:
        canon = _CANON.get
        last: str | None = None  # key of the value a folded line would continue
        for field_line in rest.split("\n"):
            name, colon, value = field_line.partition(":")
            key = canon(name)
            if key is None or not colon:
                if field_line[:1] in (" ", "\t"):
                    if last is not None:
                        headers[last] = f"{headers[last]} {field_line.strip()}".strip()
                    continue
                key = _canonical(name) if colon else None
                if key is None:
                    if "malformed_header_line" not in notes:
                        notes.append("malformed_header_line")
                    last = None
                    continue
            value = value.strip()
            old = headers.setdefault(key, value)
            last = key if old is value else _repeated(headers, key, old, value, notes)
        if len(rest) > MAX_HEADER_FIELD:
            longest = max(map(len, headers.values()))
            if longest > MAX_HEADER_FIELD:
                raise SipParseError("header_too_long", f"a header field of {longest} characters")

    # mandatory fields
    call_id = headers.get("call-id")
    if not call_id:
        raise SipParseError("missing_call_id", "no Call-ID header")
    p.call_id = call_id
    cseq = headers.get("cseq")
    if cseq is None:
        raise SipParseError("missing_cseq", "no CSeq header")
    parts = cseq.split()
    if len(parts) != 2 or not (parts[0].isdigit() and parts[0].isascii() and len(parts[0]) <= 10):
        raise SipParseError("bad_cseq", f"CSeq {cseq[:80]!r}")
    p.cseq_num = num = int(parts[0])
    if num >= 2**32:
        raise SipParseError("bad_cseq", f"CSeq number {num} too large")
    p.cseq_method = parts[1]
    if p.is_request and parts[1] != p.method:
        notes.append("cseq_method_mismatch")

    # body, framed by Content-Length
    length = headers.get("content-length")
    rest_len = n - body_start
    if length is None:
        body_len = rest_len
        notes.append("missing_content_length")
    else:
        if not (length.isdigit() and length.isascii() and len(length) <= 9):
            raise SipParseError("bad_content_length", f"Content-Length {length[:40]!r}")
        body_len = int(length)
        if body_len > rest_len:
            raise SipParseError("truncated_body", f"Content-Length {body_len} but {rest_len} bytes follow")
        if body_len < rest_len:
            p.trailing = rest_len - body_len
            notes.append("trailing_bytes")
    if body_len:
        p.body = data[body_start : body_start + body_len]
    p.size = body_start + body_len - start

    _addresses(headers, p)
    _other_headers(headers, p)
    if correlation_headers:
        p.correlation_id = _correlation(headers, correlation_headers)
    ctype = headers.get("content-type")
    if ctype:
        media_type = ctype.partition(";")[0].strip().lower()
        p.content_type = media_type
        if body_len:
            if media_type == "application/sdp":
                p.sdp = _sdp(p.body)
            elif media_type.startswith("multipart/"):
                p.sdp = _multipart_sdp(p.body, ctype)
    return p


def _repeated(headers: dict[str, str], key: str, old: str, value: str, notes: list[str]) -> str | None:
    """A header seen again: list headers are joined (returns the key), single-valued ones noted (None)."""
    if key in _COMBINED:
        headers[key] = f"{old}, {value}" if old else value
        return key
    if key in _SINGLE:
        if key == "content-length":
            if old != value and "conflicting_content_length" not in notes:
                notes.append("conflicting_content_length")
        elif "duplicate_header" not in notes:
            notes.append("duplicate_header")
    return None


def _start_line(line: str, p: ParsedSip) -> None:
    """Fill method/ruri or status/reason from the start line; fast path for SIP/2.0 as usually sent."""
    if line.endswith(" SIP/2.0"):
        method, _, ruri = line[:-8].partition(" ")
        if (
            ruri[:1].isalpha()
            and " " not in ruri
            and ":" in ruri
            and method.isascii()
            and (method.isalpha() or _TOKEN.fullmatch(method))
        ):
            p.method, p.ruri = method, ruri
            p.ruri_user, p.ruri_host = _uri_parts(ruri)
            return
    elif line.startswith("SIP/2.0 "):
        code = line[8:11]
        if code.isdigit() and code.isascii() and "100" <= code <= "699" and line[11:12] in (" ", ""):
            p.is_request = False
            p.status_code = int(code)
            p.reason = line[12:].strip()
            return
    _start_line_slow(line, p)


def _start_line_slow(line: str, p: ParsedSip) -> None:
    """Start lines off the fast path: tolerated variants, or the precise error."""
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        code, _, reason = rest.lstrip(" ").partition(" ")
        if not _VERSION.fullmatch(version):
            raise SipParseError("bad_start_line", f"status line {line[:80]!r}")
        if version.upper() != "SIP/2.0":
            raise SipParseError("unsupported_version", version[:20])
        if not (len(code) == 3 and code.isascii() and code.isdigit() and "100" <= code <= "699"):
            raise SipParseError("bad_status_code", f"status code {code[:20]!r}")
        p.is_request = False
        p.status_code = int(code)
        p.reason = reason.strip()
        return
    if "SIP/" not in line.upper():
        raise SipParseError("not_sip", f"first line {line[:80]!r}")
    parts = line.split(" ")
    if len(parts) != 3:
        parts = line.split()
        if len(parts) != 3:
            raise SipParseError("bad_start_line", f"request line {line[:80]!r}")
        p.notes.append("lws_in_start_line")
    method, ruri, version = parts
    if not _VERSION.fullmatch(version) or not _TOKEN.fullmatch(method) or not _URI_START.match(ruri):
        raise SipParseError("bad_start_line", f"request line {line[:80]!r}")
    if version.upper() != "SIP/2.0":
        raise SipParseError("unsupported_version", version[:20])
    p.method, p.ruri = method, ruri
    p.ruri_user, p.ruri_host = _uri_parts(ruri)


def _addresses(headers: dict[str, str], p: ParsedSip) -> None:
    """From, To, Contact, P-Asserted-Identity / Remote-Party-ID, Diversion / History-Info."""
    value = headers.get("from")
    if value is None:
        p.notes.append("missing_from")
    else:
        p.from_display, p.from_user, p.from_host, p.from_tag = _from_to(value)
    value = headers.get("to")
    if value is None:
        p.notes.append("missing_to")
    else:
        p.to_display, p.to_user, p.to_host, p.to_tag = _from_to(value)
    value = headers.get("contact")
    if value:
        if value == "*":
            p.contact = "*"
        else:
            _, p.contact, _, _, params = _address(value, False)
            if params:
                m = _EXPIRES_PARAM.search(params)
                if m is not None:
                    p.contact_expires = _small_int(m.group(1))
    value = headers.get("p-asserted-identity") or headers.get("remote-party-id")
    if value:
        p.pai_user = _first_user(value)
    if "diversion" in headers or "history-info" in headers:
        p.diversion_user = _diversion(headers)


def _other_headers(headers: dict[str, str], p: ParsedSip) -> None:
    """Via, Max-Forwards, Expires, User-Agent/Server, Authorization, Reason."""
    vias = headers.get("via")
    if vias is None:
        p.notes.append("missing_via")
    else:
        if '"' in vias:
            elements = _elements(vias)
            p.via_count = len(elements)
            top = elements[0] if elements else ""
        else:
            p.via_count = vias.count(",") + 1
            top = vias.partition(",")[0]
        p.via_branch = _param(top, ";branch=", _BRANCH)
    value = headers.get("max-forwards")
    if value is not None:
        p.max_forwards = mf = _small_int(value, 2**31)
        if mf is None or mf > 255:
            p.notes.append("bad_max_forwards")
    value = headers.get("expires")
    if value is not None:
        p.expires = _small_int(value)
        if p.expires is None:
            p.notes.append("bad_expires")
    p.user_agent = headers.get("user-agent")
    p.server = headers.get("server")
    value = headers.get("authorization") or headers.get("proxy-authorization")
    if value:
        p.auth_user = _quoted_param(_USERNAME, value)
    value = headers.get("reason")
    if value:
        p.q850_cause, p.reason_text = _reason_header(value)


# --- stream framing --------------------------------------------------------------------------------

_CRLFS = re.compile(rb"[\r\n]+")
_START_LINE = re.compile(
    rb"(?:[A-Za-z0-9.!%*_+`'~-]+ [^ \r\n]+ SIP/[0-9]+\.[0-9]+|SIP/[0-9]+\.[0-9]+ [0-9]{3}(?: [^\r\n]*)?)[ \t]*\r?\n",
    re.IGNORECASE,
)
_RESYNC = re.compile(
    rb"(?:INVITE|ACK|BYE|CANCEL|REGISTER|OPTIONS|PRACK|SUBSCRIBE|NOTIFY|PUBLISH|INFO|REFER|MESSAGE|UPDATE)"
    rb" [^ \r\n]+ SIP/2\.0\r?\n|SIP/2\.0 [1-6][0-9][0-9] [^\r\n]*\r?\n"
)
_CONTENT_LENGTH = re.compile(
    rb"^(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,12})[ \t]*\r?$", re.IGNORECASE | re.MULTILINE
)


def frame_stream(buf: bytes, *, max_header: int = MAX_HEADER_BLOCK, max_body: int = MAX_STREAM_BODY) -> Framed:
    """Cut the complete SIP messages out of a TCP/TLS byte stream buffer.

    * CRLF keep-alives (RFC 5626 ``CRLFCRLF`` pings, stray line ends) between messages are skipped.
    * A message is complete when its blank line and its Content-Length bytes of body are in ``buf``;
      an incomplete one waits (it is not consumed). A missing Content-Length counts as 0 (RFC 3261
      18.3 makes it mandatory on streams); ``parse_sip`` then notes ``missing_content_length``.
    * Bytes that do not start with a SIP start line are garbage: they are skipped up to the next
      start line of a known method or a ``SIP/2.0 NNN`` status line and returned in
      :attr:`Framed.garbage` (adjacent skipped bytes as one chunk). So is a header block that grows
      past ``max_header`` without a blank line, or one whose Content-Length exceeds ``max_body``.
      When no start line follows, garbage runs to the last line end: the unfinished last line waits,
      as it may be the beginning of a start line (at most :data:`MAX_START_LINE` bytes of it).

    Callers keep ``buf[result.consumed:]`` and append the next segment to it. Never raises.
    """
    n = len(buf)
    pos = 0
    messages: list[bytes] = []
    spans: list[list[int]] = []
    while pos < n:
        m = _CRLFS.match(buf, pos)
        if m is not None:
            pos = m.end()
            continue
        eol = buf.find(b"\n", pos, pos + MAX_START_LINE + 1)
        if eol < 0:
            if n - pos <= MAX_START_LINE:
                break  # first line not complete yet
            pos = _skip_garbage(buf, pos, spans)
            continue
        if _START_LINE.match(buf, pos, eol + 1) is None:
            pos = _skip_garbage(buf, pos, spans)
            continue
        head_end, sep = _header_end(buf, pos)
        if head_end < 0:
            if n - pos <= max_header:
                break  # header block not complete yet
            pos = _skip_garbage(buf, pos, spans)
            continue
        m = _CONTENT_LENGTH.search(buf, pos, head_end)
        length = int(m.group(1)) if m is not None else 0
        if length > max_body:
            pos = _skip_garbage(buf, pos, spans)
            continue
        end = head_end + sep + length
        if end > n:
            break  # body not complete yet
        messages.append(buf[pos:end])
        pos = end
    return Framed(messages, pos, [buf[a:b] for a, b in spans])


def _skip_garbage(buf: bytes, pos: int, spans: list[list[int]]) -> int:
    """Skip from ``pos`` to the next start line, recording the skipped span. Returns the new position."""
    m = _RESYNC.search(buf, pos + 1)
    if m is not None:
        new = m.start()
    else:
        new = max(buf.rfind(b"\n", pos) + 1, len(buf) - MAX_START_LINE, pos + 1)
    if spans and spans[-1][1] == pos:
        spans[-1][1] = new
    else:
        spans.append([pos, new])
    return new
