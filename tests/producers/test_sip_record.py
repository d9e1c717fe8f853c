"""to_record: ParsedSip + capture metadata -> SipMessage, every field, checked by hand."""

from __future__ import annotations

from producers.sip_parser import parse_sip
from producers.sip_record import to_record
from sipscope import records
from sipscope.numbers import NumberPlan
from sipscope.records import SdpSummary, SipMessage, message_id

PLAN = NumberPlan()  # Australia: 61 / 0 / 00
CORRELATION = ["X-CID", "P-Charging-Vector", "Session-ID"]

INVITE = (
    b"INVITE sip:0289707501@gw.example.net;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-inv-1\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-orig\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Alice Smith" <sip:+61 2 9999-0000@atlanta.example.com>;tag=1928301774\r\n'
    b"To: <sip:0289707501@gw.example.net;user=phone>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.101:5060>;expires=180\r\n"
    b"P-Asserted-Identity: <tel:+61299990000>\r\n"
    b"Diversion: <sip:0011441234567890@gw.example.net>;reason=unconditional\r\n"
    b'Proxy-Authorization: Digest username="alice", realm="atlanta.example.com", nonce="n"\r\n'
    b"X-CID: leg-a-7\r\n"
    b"User-Agent: ExamplePhone/1.2\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 92\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=- 1 1 IN IP4 192.0.2.101\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 8\r\n"
)
BUSY = (
    b"SIP/2.0 486 Busy Here\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-inv-1\r\n"
    b"From: <sip:+61299990000@atlanta.example.com>;tag=1928301774\r\n"
    b"To: <sip:0289707501@gw.example.net;user=phone>;tag=xyz\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b'Reason: Q.850;cause=17;text="User busy"\r\n'
    b"Expires: 30\r\n"
    b"Server: ExampleGW/4.5\r\n"
    b"User-Agent: SomethingElse/1\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def _record(data: bytes, **kw: object) -> SipMessage:
    args: dict = {
        "ts": 1700000000.25,
        "src_ip": "192.0.2.10",
        "src_port": 5060,
        "dst_ip": "192.0.2.20",
        "dst_port": 5080,
        "transport": "UDP",
        "node": "edge-1",
        "direction": "out",
        "plan": PLAN,
    }
    args.update(kw)
    return to_record(parse_sip(data, CORRELATION), **args)


def test_request_fills_every_field() -> None:
    m = _record(INVITE)
    assert b'"v":%d' % records.SIP_MESSAGE_VERSION in records.encode(m)
    assert m.id == message_id("edge-1", 1700000000.25, "192.0.2.10", 5060, "192.0.2.20", 5080, INVITE)
    assert (m.ts, m.src_ip, m.src_port, m.dst_ip, m.dst_port) == (1700000000.25, "192.0.2.10", 5060, "192.0.2.20", 5080)
    assert (m.transport, m.node, m.direction) == ("udp", "edge-1", "out")
    assert m.is_request and m.method == "INVITE" and m.status_code is None and m.reason is None
    assert m.ruri == "sip:0289707501@gw.example.net;user=phone"
    assert (m.ruri_user, m.ruri_user_e164) == ("0289707501", "61289707501")
    assert (m.call_id, m.cseq_num, m.cseq_method) == ("a84b4c76e66710@pc33.atlanta.example.com", 314159, "INVITE")
    assert (m.from_display, m.from_user, m.from_user_e164) == ("Alice Smith", "+61 2 9999-0000", "61299990000")
    assert (m.from_host, m.from_tag) == ("atlanta.example.com", "1928301774")
    assert (m.to_display, m.to_user, m.to_user_e164, m.to_host, m.to_tag) == (
        None,
        "0289707501",
        "61289707501",
        "gw.example.net",
        None,
    )
    assert (m.pai_user, m.pai_user_e164) == ("+61299990000", "61299990000")
    # 0011 is not the plan's international prefix (00): 00 + 11... -> 11441234567890
    assert (m.diversion_user, m.diversion_user_e164) == ("0011441234567890", "11441234567890")
    assert m.contact == "sip:alice@192.0.2.101:5060"
    assert m.user_agent == "ExamplePhone/1.2"
    assert (m.via_branch, m.via_count, m.max_forwards) == ("z9hG4bK-inv-1", 2, 69)
    assert m.expires == 180  # no Expires header: the Contact's expires parameter
    assert m.auth_user == "alice"
    assert (m.q850_cause, m.reason_text) == (None, None)
    assert m.correlation_id == "leg-a-7"
    assert m.content_type == "application/sdp"
    assert m.sdp == SdpSummary(media_ip="192.0.2.101", audio_port=49172, codecs=["PCMA/8000"])
    assert m.raw == INVITE.decode()


def test_response_uses_server_expires_header_and_reason() -> None:
    m = _record(BUSY, direction="in")
    assert not m.is_request and m.method is None
    assert (m.status_code, m.reason) == (486, "Busy Here")
    assert m.user_agent == "ExampleGW/4.5"  # Server wins for responses
    assert m.expires == 30
    assert (m.q850_cause, m.reason_text) == (17, "User busy")
    assert m.to_tag == "xyz" and m.from_user_e164 == "61299990000"
    assert m.sdp is None and m.content_type is None and m.correlation_id is None


def test_user_agent_falls_back_to_the_other_header() -> None:
    only_server = INVITE.replace(b"User-Agent: ExamplePhone/1.2", b"Server: ExampleB2BUA/9")
    assert _record(only_server).user_agent == "ExampleB2BUA/9"
    only_ua = BUSY.replace(b"Server: ExampleGW/4.5\r\n", b"")
    assert _record(only_ua).user_agent == "SomethingElse/1"


def test_hep_correlation_id_wins_over_the_header() -> None:
    assert _record(INVITE, correlation_id="hep-corr-1").correlation_id == "hep-corr-1"
    assert _record(INVITE, correlation_id=None).correlation_id == "leg-a-7"


def test_every_field_is_filled_by_a_request_or_a_response() -> None:
    req, resp = _record(INVITE), _record(BUSY)
    defaults = SipMessage(
        ts=0.0,
        src_ip="",
        src_port=0,
        dst_ip="",
        dst_port=0,
        transport="",
        is_request=False,
        call_id="",
        cseq_num=0,
        cseq_method="",
        raw="",
    )
    unset = [
        f
        for f in SipMessage.__struct_fields__
        if getattr(req, f) == getattr(defaults, f) and getattr(resp, f) == getattr(defaults, f)
    ]
    # the only fields neither message sets: a display name on To (none sent)
    assert unset == ["to_display"]


def test_raw_with_invalid_utf8_is_replaced_and_id_hashes_the_bytes() -> None:
    data = INVITE.replace(b"Alice Smith", b"Alice \xff\xfe")
    m = _record(data)
    assert "\ufffd" in m.raw and m.from_display == "Alice \ufffd\ufffd"
    assert m.id == message_id("edge-1", 1700000000.25, "192.0.2.10", 5060, "192.0.2.20", 5080, data)
    assert m.id != _record(INVITE).id


def test_record_round_trips_through_the_wire_format() -> None:
    m = _record(INVITE)
    back = records.decode(records.encode(m), SipMessage)
    assert back == m


def test_other_number_plan() -> None:
    uk = NumberPlan(country_code="44", trunk_prefix="0", international_prefix="00")
    m = _record(INVITE, plan=uk)
    assert m.ruri_user_e164 == "44289707501"
    assert m.pai_user_e164 == "61299990000"  # already international
