"""The native SIP core (producers/sipcore, module ``sipscope_sipcore``) against the Python parser.

``parse_sip`` uses the core when it is installed; the core either returns exactly what the Python
parser returns or declines (None) and lets Python parse the message. These tests compare
``parse_sip`` with ``parse_sip_python`` field by field (or error reason by error reason) on every SIP
payload of the shared captures and on hypothesis-generated variants of real messages.

The capture fast path's ``native_record`` (one call to the core's ``RecordBuilder``: parse + id + the whole
record) is checked the same way against ``to_record(parse_sip_python(...))``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from producers import sip_parser
from producers.sip_parser import COMPACT_FORMS, SipParseError, parse_sip, parse_sip_python
from producers.sip_record import e164_memo, native_record, to_record
from sipscope.numbers import NumberPlan
from sipscope.records import SipMessage

sipcore = pytest.importorskip(
    "sipscope_sipcore", reason="native core not installed (make setup builds it: pip install ./producers/sipcore)"
)

from test_sip_parser import REAL_MESSAGES  # noqa: E402 - after the skip (same directory, rootdir import mode)

from tests.conftest import shared_captures  # noqa: E402

PCAPS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "pcaps"
CORRELATION = ("X-CID", "P-Charging-Vector")


def _result(fn: Any, data: bytes, corr: Any = CORRELATION) -> Any:
    try:
        p = fn(data, corr)
    except SipParseError as exc:
        return ("error", exc.reason)
    return {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


def _same(data: bytes, corr: Any = CORRELATION) -> bool:
    """parse_sip == parse_sip_python on ``data``; True when the core handled it natively."""
    native = sipcore.parse(data, corr) is not None
    got, want = _result(parse_sip, data, corr), _result(parse_sip_python, data, corr)
    if got != want:
        diff = (
            {k: (got[k], want[k]) for k in want if got[k] != want[k]}
            if isinstance(got, dict) and isinstance(want, dict)
            else (got, want)
        )
        pytest.fail(f"native and Python results differ on {data[:300]!r}: {diff}")
    return native


def _same_record(data: bytes, corr: Any = CORRELATION, ts: float = 1700000000.123456, node: str = "edge-1",
                 src: tuple[str, int] = ("192.0.2.10", 5060), dst: tuple[str, int] = ("2001:db8::1", 5080)) -> bool:
    """native_record == to_record(parse_sip_python(...)) on ``data``; True when the core built the record."""
    plan = NumberPlan()
    got = native_record(data, corr, ts, *src, *dst, "UDP", node, e164_memo(plan))
    if got is None:
        return False
    want = to_record(parse_sip_python(data, corr), ts=ts, src_ip=src[0], src_port=src[1], dst_ip=dst[0],
                     dst_port=dst[1], transport="UDP", node=node, plan=plan)
    assert type(got) is SipMessage
    if got != want:
        diff = {f: (getattr(got, f), getattr(want, f)) for f in SipMessage.__struct_fields__
                if getattr(got, f) != getattr(want, f)}
        pytest.fail(f"native and Python records differ on {data[:300]!r}: {diff}")
    return True


def test_parse_sip_uses_the_core() -> None:
    assert sip_parser.NATIVE is True
    msg = REAL_MESSAGES[9]  # IMS_INVITE
    assert _result(parse_sip, msg) == _result(parse_sip_python, msg)


@pytest.mark.shared
@pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/testdata is absent")
@pytest.mark.parametrize("pcap", shared_captures(), ids=lambda p: p.name)
def test_captures_native_equals_python(pcap: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from producers.cli import file_payloads
    from sipscope.settings import get_settings

    total = native = records = 0
    for payload in file_payloads(str(pcap), None, get_settings()):
        total += 1
        native += _same(payload.data)
        p = payload
        records += _same_record(p.data, ts=p.ts, src=(p.src_ip, p.src_port), dst=(p.dst_ip, p.dst_port))
    with capsys.disabled():
        print(f"\n{pcap.name}: {native}/{total} handled natively ({native / max(total, 1):.1%})")
    assert records == native  # the record path declines exactly what the parser declines
    if pcap.name.startswith(("sipp-", "attack-register")):
        assert native >= 0.9 * total


# --- hypothesis: variants of real messages ---------------------------------------------------------

_BASE = [
    (
        b"INVITE sip:+61289707501@biloxi.example.com;user=phone SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
        b"Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKabc\r\n"
        b"Max-Forwards: 70\r\n"
        b'From: "Alice \\"A\\"" <sip:alice:secret@atlanta.example.com>;tag=1928301774\r\n'
        b"To: <tel:+61298765432;phone-context=+61>\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Contact: <sip:alice@192.0.2.101:5060>;expires=3600, <sip:a2@[2001:db8::1]>\r\n"
        b'P-Asserted-Identity: "Alice" <sip:+61289707501@atlanta.example.com>\r\n'
        b"Remote-Party-ID: <sip:rpid@example.com>;party=calling\r\n"
        b"Diversion: <sip:div@example.com>;reason=unconditional\r\n"
        b"History-Info: <sip:h1@example.com>;index=1, <sip:h2@example.com>;index=1.1\r\n"
        b'Proxy-Authorization: Digest username="al\\"ice", realm="x", nonce="n"\r\n'
        b'Reason: SIP;cause=200;text="Call completed elsewhere", Q.850;cause=16;text="Normal"\r\n'
        b"X-CID: corr-123;x=y\r\n"
        b'P-Charging-Vector: icid-value="ab\\c";icid-generated-at=1.2.3.4\r\n'
        b"Expires: 120\r\n"
        b"User-Agent: ExamplePhone/1.2.3\r\n"
        b"Content-Type: application/sdp;charset=x\r\n"
        b"Content-Length: 200\r\n\r\n"
        b"v=0\r\no=a 1 1 IN IP4 192.0.2.101\r\ns=-\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\na=recvonly\r\n"
        b"m=audio 49172 RTP/AVP 0 8 101 97\r\nc=IN IP6 2001:db8::5\r\na=rtpmap:101 telephone-event/8000\r\n"
        b"a=inactive\r\nm=video 5000/2 RTP/AVP 31\r\n"
    ),
    (
        b"SIP/2.0 183 Session Progress\r\n"
        b"v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\r\n"
        b"f: Bob <sip:bob@example.com>;tag=x1\r\n"
        b"t: sip:carol@example.com;tag=y2\r\n"
        b"i: cid-2\r\n"
        b"CSeq: 7 INVITE\r\n"
        b"m: sip:carol@10.0.0.9;expires=60\r\n"
        b"Server: GW\r\n"
        b"Reason: Q.850 ;cause=17\r\n"
        b"Authorization: Digest username=bob,realm=r\r\n"
        b"c: application/sdp\r\n"
        b"l: 0\r\n\r\n"
    ),
    (
        b"REGISTER sip:registrar.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds7\r\n"
        b"Max-Forwards: 300\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n"
        b"Call-ID: 843817637684230@998sdasdh09\r\n"
        b"CSeq: 1826 REGISTER\r\n"
        b"Contact: *\r\n"
        b"Expires: 0\r\n"
        b"Content-Length: 0\r\n\r\n"
    ),
]
_SEEDS = _BASE * 4 + list(REAL_MESSAGES)  # mostly messages the core handles, plus the torture ones
_NAMES = sorted({*COMPACT_FORMS, *COMPACT_FORMS.values(), "Call-ID", "CSeq", "WWW-Authenticate", "X-CID"})
_PIECES = [
    b"\r\n", b" ", b"\t", b":", b";", b",", b'"', b"\\", b"<", b">", b"@", b"=", b"[", b"]", b"\x00", b"\xff",
    b"\n", b"\r", b"\xc3\xa9", b"tag=", b";tag=", b";branch=", b"expires=", b"username=", b"text=", b"cause=",
    b"sip:", b"tel:", b"Q.850", b"0", b"99999999999", b"\r\n ", b"\r\nVia: x\r\n", b"\r\nContact: <sip:a@b>\r\n",
    b"m=audio 1 RTP/AVP 0\r\n", b"a=rtpmap:0 X/1\r\n", b"c=IN IP4 1.1.1.1\r\n", b"a=sendonly", b"\r\n\r\n",
]


@st.composite
def variants(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["case", "insert", "delete", "dup_line", "header", "truncate", "flip"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "case":
            end = min(len(data), pos + draw(st.integers(1, 30)))
            data[pos:end] = bytes(data[pos:end]).swapcase()
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(_PIECES))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 12))]
        elif op == "dup_line":
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.find(b"\r\n", pos)
            if start > 0 and end > start:
                data[start:start] = data[start : end + 2]
        elif op == "header":
            head = data.find(b"\r\n")
            if head >= 0:
                name = draw(st.sampled_from(_NAMES)).encode()
                name = draw(st.sampled_from([name, name.upper(), name.title(), name + b" ", name + b"\t"]))
                value = draw(st.binary(max_size=40) | st.sampled_from(_PIECES) | st.just(b"<sip:u@h>;tag=t"))
                data[head + 2 : head + 2] = name + b":" + value + b"\r\n"
        elif op == "truncate":
            del data[pos:]
        elif op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variants(), st.sampled_from([CORRELATION, (), ["x-cid"], ("P-Charging-Vector", "X-CID"), ("i", " X-Cid ")]))
def test_variants_native_equals_python(data: bytes, corr: Any) -> None:
    assert _same_record(data, corr) == _same(data, corr)


@settings(max_examples=1500, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(0, 2**34).map(lambda ns: 1.7e9 + ns / 1e9)
    | st.integers(0, 2**20).map(lambda k: 1.7e9 + k / 128),  # exact ties at the 7th decimal: rounded to even
    st.text(max_size=12),
    st.sampled_from([("192.0.2.10", 5060), ("2001:db8::1", 0), ("", 65535)]),
)
def test_native_message_id_equals_python(ts: float, node: str, src: tuple[str, int]) -> None:
    """The id hashes ``f"{node}|{ts:.6f}|..."``: the core's float text must be Python's for any capture time."""
    assert _same_record(_BASE[2], ts=ts, node=node, src=src)


def test_native_record_declines_what_python_spells_differently() -> None:
    for ts in (float("nan"), float("inf"), float("-inf")):
        assert native_record(_BASE[2], (), ts, "192.0.2.10", 5060, "192.0.2.20", 5060, "udp", "",
                             e164_memo(NumberPlan())) is None


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(["From", "To", "Contact", "Via", "P-Asserted-Identity", "Diversion", "History-Info", "Reason",
                     "Authorization", "Content-Type", "CSeq", "Max-Forwards", "Expires", "X-CID",
                     "P-Charging-Vector"]),
    st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=126), max_size=80),
)
def test_any_ascii_header_value_native_equals_python(name: str, value: str) -> None:
    msg = (
        "INVITE sip:a@example.com SIP/2.0\r\nCall-ID: c@h\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP h;branch=b\r\n"
        f"{name}: {value}\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    assert _same_record(msg) == _same(msg)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from([
    b"v=0", b"c=IN IP4 10.0.0.1", b"c=IN IP6  ::1/64", b"c=IN IP4 /x", b"m=audio 4000 RTP/AVP 0 8 101",
    b"m=audio 0 RTP/AVP 0", b"m=audio 99999 RTP/AVP 8", b"m=video 5002 RTP/AVP 96", b"m=audio1 3 x",
    b"m=audio  7/2  RTP/AVP\t0 \x0b 18", b"m=audio 5", b"a=rtpmap:0 PCMU/8000", b"a=rtpmap: 101 tel/8000",
    b"a=rtpmap:8PCMA", b"a=sendonly", b"a=sendrecvx", b"a=inactive ", b"a=recvonly", b"\xe9", b"", b"x=\x1c",
]), max_size=12), st.sampled_from([b"\r\n", b"\n"]))
def test_sdp_bodies_native_equals_python(lines: list[bytes], eol: bytes) -> None:
    body = eol.join(lines)
    msg = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
        b"Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    assert _same_record(msg) == _same(msg)


def test_native_records_share_no_mutable_value() -> None:
    """The builder starts every record as a copy of one template record: two records (and their SDP
    summaries) must not share a list or dict, or changing one record would change the other."""
    e164 = e164_memo(NumberPlan())
    a, b = (native_record(_BASE[0], CORRELATION, ts, "192.0.2.10", 5060, "192.0.2.20", 5060, "udp", "n", e164)
            for ts in (1.0, 2.0))
    assert a is not None and b is not None and a.sdp is not None and b.sdp is not None
    assert a.sdp.codecs == b.sdp.codecs and a.sdp.codecs
    pairs = [(a, b, SipMessage.__struct_fields__), (a.sdp, b.sdp, type(a.sdp).__struct_fields__)]
    for x, y, fields in pairs:
        for f in fields:
            vx = getattr(x, f)
            if isinstance(vx, (list, dict, set)):
                assert vx is not getattr(y, f), f
    a.sdp.codecs.append("X/1")
    assert "X/1" not in b.sdp.codecs


_SDP = b"v=0\r\nc=IN IP4 10.0.0.9\r\nm=audio 4000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\n"
_ISUP = b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00\x00"


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(['multipart/mixed;boundary=unique-boundary-1', 'multipart/mixed; boundary="b1"',
                     'Multipart/Signed; BOUNDARY = "--secret_NGlk=="; protocol="x"', "multipart/mixed;boundary=a,b",
                     'multipart/mixed;boundary=""x', 'multipart/mixed;boundary="b\\"1"', "multipart/mixed",
                     'multipart/alternative;boundary="b1";x=1', "multipart/mixed;boundary=;boundary=b1"]),
    st.lists(st.sampled_from([
        ("application/sdp", _SDP), ("application/isup; version=itu-t92+", _ISUP), ("text/plain", b"hello"),
        ("multipart/mixed; boundary=inner", b"--inner\r\nContent-Type: application/sdp\r\n\r\n" + _SDP + b"\r\n--inner--"),
        ("multipart/mixed; boundary=inner", b"--inner\r\nc: text/plain\r\n\r\nx\r\n--inner--"),
        ("application/SDPx", _SDP.replace(b"10.0.0.9", b"10.0.0.7")), ("application/sdp", "é".encode()),
    ]), max_size=4),
    st.sampled_from([b"\r\n", b"\n"]),
    st.sampled_from(["Content-Type", "c", "content-TYPE "]),
    st.booleans(),
)
def test_multipart_bodies_native_equals_python(ctype: str, parts: list[tuple[str, bytes]], eol: bytes, name: str,
                                               closed: bool) -> None:
    """Multipart bodies (SIP-I ISUP beside SDP, STIR/SHAKEN signatures, nested multipart): the core finds the
    same SDP part as the Python parser (or declines)."""
    import re

    m = re.search(r'boundary\s*=\s*"?([^";]*)', ctype, re.IGNORECASE)
    boundary = (m.group(1) if m else "b1").encode()
    body = b""
    for ptype, content in parts:
        body += b"--" + boundary + eol + f"{name}: {ptype}".encode() + eol + eol + content + eol
    if closed:
        body += b"--" + boundary + b"--" + eol
    msg = (
        b"INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=b\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
        b"Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: " + ctype.encode() + b"\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    assert _same_record(msg) == _same(msg)


def test_multipart_sdp_is_read_natively() -> None:
    """A SIP-I INVITE (SDP + ISUP): the core reads it and finds the SDP part."""
    body = (b"--b1\r\nContent-Type: application/sdp\r\n\r\n" + _SDP + b"\r\n--b1\r\nContent-Type: application/isup\r\n"
            b"\r\n" + _ISUP + b"\r\n--b1--\r\n")
    msg = (b"INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=b\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
           b"Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: multipart/mixed;boundary=b1\r\nContent-Length: "
           + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert _same(msg) is True
    rec = native_record(msg, CORRELATION, 1.0, "192.0.2.10", 5060, "192.0.2.20", 5060, "udp", "", e164_memo(NumberPlan()))
    assert rec is not None and rec.sdp is not None
    assert (rec.sdp.media_ip, rec.sdp.audio_port, rec.sdp.codecs) == ("10.0.0.9", 4000, ["PCMA/8000", "PCMU/8000"])


def _id_or_error(fn: Any, parts: tuple) -> Any:
    try:
        return fn(*parts)
    except Exception as exc:  # noqa: BLE001 - the same error type either way
        return type(exc)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(st.floats(), st.floats(min_value=1e-5, max_value=2e16), st.integers(),
                          st.integers(min_value=-2**70, max_value=2**70), st.text(), st.booleans(), st.none(),
                          st.floats(min_value=1.6e9, max_value=1.9e9).map(lambda x: round(x, 6))), max_size=5))
@example([562949953421312.25, 1700000000.0, 2**64, "é", True, None])  # a tie Rust rounds up, Python to even
def test_native_stable_id_equals_python(parts: list) -> None:
    """The document ids of calls, registrations, KPI rows and alerts: the core spells floats itself in the
    range where Rust's shortest digits are Python's repr, and asks Python for everything else."""
    from sipscope.records import stable_id_python

    assert _id_or_error(sipcore.stable_id, tuple(parts)) == _id_or_error(stable_id_python, tuple(parts))


def test_records_use_the_native_stable_id() -> None:
    from sipscope import records

    assert records.stable_id is sipcore.stable_id
    assert records.stable_id("call-1@h", 1700000000.0) == records.stable_id_python("call-1@h", 1700000000.0)
