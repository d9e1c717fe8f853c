"""frame_stream: SIP over TCP/TLS cut into messages (RFC 3261 18.3: Content-Length frames the body)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.sip_parser import MAX_START_LINE, frame_stream, parse_sip

# RFC 3261 24.2 style REGISTER / 200 and an INVITE with an SDP body, as a TCP peer sends them.
REGISTER = (
    b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:bob@192.0.2.4;transport=tcp>\r\n"
    b"Expires: 7200\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7;received=192.0.2.4\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=2493k59kd\r\n"
    b"From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:bob@192.0.2.4;transport=tcp>\r\n"
    b"Expires: 7200\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)
INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com;transport=tcp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(SDP)
) + SDP
STREAM = REGISTER + b"\r\n\r\n" + INVITE + OK  # with a RFC 5626 CRLFCRLF keep-alive ping


def test_several_messages_in_one_segment() -> None:
    r = frame_stream(STREAM)
    assert r.messages == [REGISTER, INVITE, OK]
    assert r.consumed == len(STREAM) and r.garbage == []
    assert [parse_sip(m).cseq_method for m in r.messages] == ["REGISTER", "INVITE", "REGISTER"]
    assert parse_sip(r.messages[1]).sdp is not None


def test_message_split_across_segments_waits_for_the_rest() -> None:
    # every split point, including inside the start line, the blank line and the body
    for cut in range(1, len(INVITE)):
        first = frame_stream(INVITE[:cut])
        assert first == ([], 0, [])
        assert frame_stream(INVITE).messages == [INVITE]


def _feed(chunks: list[bytes]) -> tuple[list[bytes], list[bytes], bytes]:
    buf = b""
    messages: list[bytes] = []
    garbage: list[bytes] = []
    for chunk in chunks:
        buf += chunk
        r = frame_stream(buf)
        messages += r.messages
        garbage += r.garbage
        buf = buf[r.consumed :]
    return messages, garbage, buf


def test_byte_by_byte_delivery() -> None:
    messages, garbage, left = _feed([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert messages == [REGISTER, INVITE, OK] and garbage == [] and left == b""


def test_keep_alives_alone_are_consumed() -> None:
    r = frame_stream(b"\r\n\r\n\r\n")
    assert r == ([], 6, [])


def test_garbage_prefix_is_skipped_to_the_next_start_line_and_reported() -> None:
    junk = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not sip\r\nmore junk\r\n"
    r = frame_stream(junk + INVITE + OK)
    assert r.messages == [INVITE, OK]
    assert r.garbage == [junk]
    assert r.consumed == len(junk + INVITE + OK)


def test_tail_of_a_lost_message_is_garbage_then_resync() -> None:
    tail = INVITE[len(INVITE) // 2 :]  # the capture started mid-message
    r = frame_stream(tail + OK)
    assert r.messages == [OK] and r.garbage == [tail]


def test_garbage_without_a_following_start_line_keeps_the_unfinished_last_line() -> None:
    r = frame_stream(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nINVITE sip:bob@biloxi.exam")
    assert r.messages == []
    assert r.garbage == [b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"]
    # the partial line may be a start line: it is kept for the next segment
    left = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nINVITE sip:bob@biloxi.exam"[r.consumed :]
    assert left == b"INVITE sip:bob@biloxi.exam"
    assert frame_stream(left + INVITE[len(left) :]).messages == [INVITE]


def test_binary_without_line_ends_is_dropped_beyond_the_start_line_limit() -> None:
    blob = bytes(range(256)).replace(b"\n", b"") * 64
    r = frame_stream(blob)
    assert r.messages == [] and r.garbage and len(blob) - r.consumed <= MAX_START_LINE


def test_missing_content_length_frames_headers_only() -> None:
    no_length = REGISTER.replace(b"Content-Length: 0\r\n", b"")
    r = frame_stream(no_length + OK)
    assert r.messages == [no_length, OK]
    assert "missing_content_length" in parse_sip(r.messages[0]).notes


def test_content_length_over_the_limit_is_garbage() -> None:
    huge = INVITE.replace(b"Content-Length: %d" % len(SDP), b"Content-Length: 999999999")
    r = frame_stream(huge + OK, max_body=1 << 20)
    assert OK in r.messages
    assert r.garbage and r.garbage[0].startswith(b"INVITE")


def test_bare_lf_message_on_a_stream() -> None:
    lf = REGISTER.replace(b"\r\n", b"\n")
    r = frame_stream(lf + OK)
    assert r.messages == [lf, OK]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=60))
def test_any_segmentation_gives_the_same_messages(sizes: list[int]) -> None:
    stream = STREAM * 2
    chunks = []
    pos = 0
    for size in sizes:
        chunks.append(stream[pos : pos + size])
        pos += size
    chunks.append(stream[pos:])
    messages, garbage, left = _feed(chunks)
    assert messages == [REGISTER, INVITE, OK] * 2 and garbage == [] and left == b""


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=200))
def test_never_raises_and_accounts_for_every_byte(noise: bytes, prefix: bytes) -> None:
    buf = prefix + INVITE + noise + OK
    r = frame_stream(buf)
    assert 0 <= r.consumed <= len(buf)
    used = sum(map(len, r.messages)) + sum(map(len, r.garbage))
    consumed = buf[: r.consumed]
    # whatever was consumed and is neither a message nor garbage is CR/LF keep-alive
    assert 0 <= r.consumed - used <= consumed.count(b"\r") + consumed.count(b"\n")
    for m in r.messages + r.garbage:
        assert m in consumed
