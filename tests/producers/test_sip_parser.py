"""parse_sip on real SIP text: RFC 4475 torture messages, RFC 3261 forms, messages as real devices send them.

RFC 4475 shows its messages with one line per CRLF-terminated line; ``_crlf`` turns the LF-separated
literals below back into the wire form. Expected values are read off the messages by hand.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.sip_parser import COMPACT_FORMS, SipParseError, clear_caches, parse_sip
from sipscope.records import SdpSummary


def _crlf(text: bytes) -> bytes:
    return text.replace(b"\n", b"\r\n")


# The 150-byte SDP body shared by many RFC 4475 messages (address varies per message).
def _rfc4475_sdp(addr: bytes, c_addr: bytes | None = None) -> bytes:
    return _crlf(
        b"v=0\n"
        b"o=mhandley 29739 7272939 IN IP4 " + addr + b"\n"
        b"s=-\n"
        b"c=IN IP4 " + (c_addr or addr) + b"\n"
        b"t=0 0\n"
        b"m=audio 49217 RTP/AVP 0 12\n"
        b"m=video 3227 RTP/AVP 31\n"
        b"a=rtpmap:31 LPC\n"
    )


# RFC 4475 3.1.1.1 A Short Tortuous INVITE (wsinv)
WSINV = _crlf(
    rb"""INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 150
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \"\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

"""
) + _rfc4475_sdp(b"192.0.2.3", b"192.0.2.4")


def test_rfc4475_short_tortuous_invite() -> None:
    p = parse_sip(WSINV)
    assert p.is_request and p.method == "INVITE"
    assert p.ruri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert (p.ruri_user, p.ruri_host) == ("vivekg", "chair-dnrc.example.com")
    assert p.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (p.cseq_num, p.cseq_method) == (9, "INVITE")
    assert p.max_forwards == 68
    # To: folded, LWS around ';' and '=' of the tag
    assert (p.to_display, p.to_user, p.to_host, p.to_tag) == (None, "vivekg", "chair-dnrc.example.com", "1918181833n")
    # From: quoted-pairs \\ and \" in the display name, tag on continuation lines
    assert p.from_display == 'J Rosenberg \\"'
    assert (p.from_user, p.from_host, p.from_tag) == ("jdrosen", "example.com", "98asjd8")
    # one Via, then v: with two comma-separated values = 3 hops; top branch from the first
    assert p.via_count == 3
    assert p.via_branch == "390skdjuw"
    assert p.contact == "sip:jdrosen@example.com"
    assert p.headers["subject"] == ""
    assert p.headers["newfangledheader"] == "newfangled value continued newfangled value"
    assert p.headers["unknownheaderwithunusualvalue"] == ";;,,;;,;"
    assert p.headers["route"] == "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    assert p.content_type == "application/sdp"
    assert len(p.body) == 150 and p.trailing == 0 and p.size == len(WSINV)
    # c= is 192.0.2.4; PT 0 and 12 are static (PCMU, QCELP); first video port 3227
    assert p.sdp == SdpSummary(
        media_ip="192.0.2.4", audio_port=49217, video_port=3227, codecs=["PCMU/8000", "QCELP/8000"]
    )
    assert p.notes == []


# RFC 4475 3.1.1.2 Wide Range of Valid Characters (intmeth); the To display name holds quoted
# BEL, NUL and DEL, the From a UTF-8 parameter value, the last header a UTF-8 value.
INTMETH = _crlf(
    b"!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    b":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\n"
    b"Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
    b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>\n'
    b"From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="
    + '"работающий"'.encode()
    + b";tag=_token~1'+`*%!-.\n"
    b"Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
    b"CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\n"
    b"Max-Forwards: 255\n"
    b"extensionHeader-!.%*+_`'~:" + "\ufeff大停電".encode() + b"\n"
    b"Content-Length: 0\n"
    b"\n"
)


def test_rfc4475_wide_range_of_valid_characters() -> None:
    p = parse_sip(INTMETH)
    assert p.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert p.cseq_method == p.method and p.cseq_num == 139122385
    # user part ends at the ':' that starts the password
    assert p.ruri_user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert p.ruri_host == "example.com"
    assert p.via_branch == "z9hG4bK-.!%66*_+`'~"
    assert p.to_display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert p.to_user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert p.from_display == "token1~` token2'+_ token3*%!.-"
    assert (p.from_user, p.from_tag) == ("mundane", "_token~1'+`*%!-.")
    assert p.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert p.max_forwards == 255
    assert p.headers["extensionheader-!.%*+_`'~"] == "\ufeff大停電"


# RFC 4475 3.1.1.3 Valid Use of the % Escaping Mechanism (esc01): compact i: and C:, folded Contact
ESC01 = _crlf(
    b"""INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 150

"""
) + _rfc4475_sdp(b"192.0.2.1")


def test_rfc4475_escaped_characters_stay_raw() -> None:
    p = parse_sip(ESC01)
    assert p.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    assert (p.ruri_user, p.ruri_host) == ("sips%3Auser%40example.com", "example.net")
    assert (p.to_user, p.to_host, p.to_tag) == ("%75se%72", "example.com", None)
    assert (p.from_user, p.from_tag) == ("I%20have%20spaces", "938")
    assert p.contact == "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    assert p.content_type == "application/sdp"
    assert p.sdp is not None and p.sdp.media_ip == "192.0.2.1"


# RFC 4475 3.1.1.4 Escaped Nulls in URIs (escnull): two Contact header rows, "L:0"
ESCNULL = _crlf(
    b"""REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

"""
)


def test_rfc4475_escaped_nulls_and_repeated_contact() -> None:
    p = parse_sip(ESCNULL)
    assert p.method == "REGISTER" and p.ruri_user is None and p.ruri_host == "example.com"
    assert (p.from_user, p.from_tag) == ("null-%00-null", "839923423")
    assert p.contact == "sip:%00@host5.example.com"
    assert p.headers["contact"] == "<sip:%00@host5.example.com>, <sip:%00%00@host5.example.com>"
    assert p.headers["content-length"] == "0" and p.body == b""


# RFC 4475 3.1.1.5 Use of % When It Is Not an Escape (esc02): an unknown method, "C%6Fntact" is
# not Contact
ESC02 = _crlf(
    b"""RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

"""
)


def test_rfc4475_percent_that_is_not_an_escape() -> None:
    p = parse_sip(ESC02)
    assert p.method == "RE%47IST%45R" and p.cseq_method == "RE%47IST%45R"
    assert p.from_display == "%Z%45" and p.from_tag == "f232jadfj23"
    assert p.via_branch == "z9hG4bK209%fzsnel234"
    assert p.contact == "sip:alias1@host1.example.com"
    assert p.headers["contact"] == "<sip:alias1@host1.example.com>, <sip:alias3@host3.example.com>"
    assert p.headers["c%6fntact"] == "<sip:alias2@host2.example.com>"


# RFC 4475 3.1.1.6 Message with No LWS between Display Name and < (lwsdisp)
LWSDISP = _crlf(
    b"""OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

"""
)


def test_rfc4475_no_lws_between_display_name_and_angle() -> None:
    p = parse_sip(LWSDISP)
    assert (p.from_display, p.from_user, p.from_host, p.from_tag) == ("caller", "caller", "example.com", "323")
    assert p.body == b"" and "missing_content_length" not in p.notes


# RFC 4475 3.1.1.7 Long Values in Header Fields (longreq); <repeat count=N>x</repeat> expanded.
LONGREQ = _crlf(
    b"INVITE sip:user@example.com SIP/2.0\n"
    b'To: "I have a user name of ' + b"extreme" * 10 + b' proportion"<sip:user@example.com:6000;'
    b"unknownparam1=very" + b"long" * 20 + b"value;longparam" + b"name" * 25 + b"=shortvalue;"
    b"very" + b"long" * 25 + b"ParameterNameWithNoValue>\n"
    b"F: sip:" + b"amazinglylongcallername" * 5 + b"@example.net;tag=12" + b"982" * 50 + b"424;"
    b"unknownheaderparam" + b"name" * 20 + b"=unknowheaderparam" + b"value" * 15 + b";"
    b"unknownValueless" + b"paramname" * 10 + b"\n"
    b"Call-ID: longreq.one" + b"really" * 20 + b"longcallid\n"
    b"CSeq: 3882340 INVITE\n"
    b"Unknown-"
    + b"Long" * 20
    + b"-Name:unknown-"
    + b"long" * 20
    + b"-value;unknown-"
    + b"long" * 20
    + b"-parameter-name = unknown-"
    + b"long" * 20
    + b"-parameter-value\n"
    b"Via: SIP/2.0/TCP sip33.example.com\n"
    b"v: SIP/2.0/TCP sip32.example.com\n"
    b"V: SIP/2.0/TCP sip31.example.com\n"
    b"Via: SIP/2.0/TCP sip30.example.com\n"
    b"ViA: SIP/2.0/TCP sip29.example.com\n"
    b"VIa: SIP/2.0/TCP sip28.example.com\n"
    b"VIA: SIP/2.0/TCP sip27.example.com\n"
    b"via: SIP/2.0/TCP sip26.example.com\n"
    b"viA: SIP/2.0/TCP sip25.example.com\n"
    b"vIa: SIP/2.0/TCP sip24.example.com\n"
    b"vIA: SIP/2.0/TCP sip23.example.com\n"
    b"V :  SIP/2.0/TCP sip22.example.com\n"
    b"v :  SIP/2.0/TCP sip21.example.com\n"
    b"V  : SIP/2.0/TCP sip20.example.com\n"
    b"v  : SIP/2.0/TCP sip19.example.com\n"
    b"Via : SIP/2.0/TCP sip18.example.com\n"
    b"Via  : SIP/2.0/TCP sip17.example.com\n"
    + b"".join(b"Via: SIP/2.0/TCP sip%d.example.com\n" % i for i in range(16, 0, -1))
    + b"Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very"
    + b"long" * 50
    + b"branchvalue\n"
    b"Max-Forwards: 70\n"
    b"Contact: <sip:" + b"amazinglylongcallername" * 5 + b"@host5.example.net>\n"
    b"Content-Type: application/sdp\n"
    b"l: 150\n"
    b"\n"
) + _rfc4475_sdp(b"192.0.2.1")


def test_rfc4475_long_values_and_34_vias_in_every_spelling() -> None:
    p = parse_sip(LONGREQ)
    assert p.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert p.to_display == "I have a user name of " + "extreme" * 10 + " proportion"
    assert (p.to_user, p.to_host) == ("user", "example.com")
    assert p.from_user == "amazinglylongcallername" * 5
    assert p.from_tag == "12" + "982" * 50 + "424"
    assert p.via_count == 34
    assert p.via_branch is None  # the top Via (sip33) has no branch
    assert p.headers["via"].startswith("SIP/2.0/TCP sip33.example.com, SIP/2.0/TCP sip32.example.com,")
    assert p.contact == "sip:" + "amazinglylongcallername" * 5 + "@host5.example.net"
    assert p.sdp is not None and p.sdp.audio_port == 49217


# RFC 4475 3.1.1.8 Extra Trailing Octets in a UDP Datagram (dblreq): the INVITE is noise.
DBLREQ_REGISTER = _crlf(
    b"""REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0

"""
)
DBLREQ_INVITE = _crlf(
    b"""INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 150

"""
) + _rfc4475_sdp(b"192.0.2.15").replace(b"m=video", b"m =video")


def test_rfc4475_extra_trailing_octets_are_ignored_and_noted() -> None:
    datagram = DBLREQ_REGISTER + DBLREQ_INVITE
    p = parse_sip(datagram)
    assert p.method == "REGISTER"
    assert p.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"  # from the compact "I:" form
    assert p.contact == "sip:j.user@host.example.com"
    assert (p.from_user, p.from_tag) == ("j.user", "43251j3j324")
    assert p.trailing == len(DBLREQ_INVITE) and p.size == len(DBLREQ_REGISTER)
    assert "trailing_bytes" in p.notes
    assert p.raw == datagram  # raw keeps the whole datagram as captured


# RFC 4475 3.1.1.9 Semicolon-Separated Parameters in URI User Part (semiuri), folded Accept
SEMIURI = _crlf(
    b"""OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
      multipart/mixed, multipart/signed,
      message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

"""
)


def test_rfc4475_semicolon_in_uri_user_part() -> None:
    p = parse_sip(SEMIURI)
    assert (p.ruri_user, p.ruri_host) == ("user;par=u%40example.net", "example.com")
    assert p.headers["accept"] == (
        "application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag"
    )


# RFC 4475 3.1.1.13 Empty Reason Phrase (noreason)
NOREASON = _crlf(
    b"""SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

"""
)


def test_rfc4475_empty_reason_phrase() -> None:
    p = parse_sip(NOREASON)
    assert not p.is_request and p.method is None
    assert (p.status_code, p.reason) == (100, "")
    assert (p.cseq_num, p.cseq_method) == (35, "INVITE")
    assert (p.from_tag, p.to_tag) == ("39ansfi3", "902jndnke3")
    assert p.via_branch == "z9hG4bK2398ndaoe"


# RFC 4475 3.1.2.1 Extraneous Header Field Separators (badinv01): tolerated, nothing invented
BADINV01 = _crlf(
    b"""INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: "Joe" <sip:joe@example.org>;;;;
Content-Length: 152
Content-Type: application/sdp

"""
) + _rfc4475_sdp(b"192.0.2.15")


def test_rfc4475_extraneous_separators_are_tolerated() -> None:
    p = parse_sip(BADINV01)
    assert p.via_branch is None
    assert p.contact == "sip:joe@example.org"
    assert len(p.body) == 152


# RFC 4475 3.1.2.14 Spaces within addr-spec (badaspec) and 3.1.2.15 Non-token Characters in
# Display Name (baddn): invalid, but a trace tool still reads who called whom.
BADASPEC = _crlf(
    b"""OPTIONS sip:user@example.org SIP/2.0
Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234
Max-Forwards: 70
From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423
To: "Watson, Thomas" < sip:t.watson@example.org >
Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3
Accept: application/sdp
CSeq: 3923239 OPTIONS
l: 0

"""
)
BADDN = _crlf(
    b"""OPTIONS sip:t.watson@example.org SIP/2.0
Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards:      70
From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43
To:      Watson, Thomas <sip:t.watson@example.org>
Call-ID: baddn.31415@c.example.com
Accept: application/sdp
CSeq:    3923239 OPTIONS
l: 0

"""
)


def test_rfc4475_bad_addr_spec_and_display_name_read_leniently() -> None:
    p = parse_sip(BADASPEC)
    assert (p.from_display, p.from_user, p.from_tag) == ("Bell, Alexander", "a.g.bell", "433423")
    assert (p.to_display, p.to_user, p.to_host) == ("Watson, Thomas", "t.watson", "example.org")
    p = parse_sip(BADDN)
    assert (p.from_display, p.from_user, p.from_tag) == ("Bell, Alexander", "a.g.bell", "43")
    assert (p.to_display, p.to_user) == ("Watson, Thomas", "t.watson")
    assert p.max_forwards == 70 and p.cseq_num == 3923239


# RFC 4475 3.1.2.9 Multiple SP Separating Request-Line Elements (lwsstart) and 3.1.2.10 SP
# Characters at End of Request-Line (trws): tolerated with a note.
@pytest.mark.parametrize(
    "start_line",
    [b"INVITE  sip:user@example.com  SIP/2.0", b"OPTIONS sip:remote-target@example.com SIP/2.0  "],
)
def test_rfc4475_extra_spaces_in_request_line_are_noted(start_line: bytes) -> None:
    msg = _crlf(
        start_line
        + b"""
Max-Forwards: 8
To: sip:user@example.com
From: sip:caller@example.net;tag=8814
Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com
CSeq: 1893884 INVITE
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923
Content-Length: 0

"""
    )
    p = parse_sip(msg)
    assert p.ruri in ("sip:user@example.com", "sip:remote-target@example.com")
    assert "lws_in_start_line" in p.notes


# --- named errors ----------------------------------------------------------------------------------

# RFC 4475 3.1.2.2 Content Length Larger Than Message (clerr)
CLERR = _crlf(
    b"""INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999

"""
) + _rfc4475_sdp(b"192.0.2.155")
# RFC 4475 3.1.2.3 Negative Content-Length (ncl)
NCL = _crlf(
    b"""INVITE sip:user@example.com SIP/2.0
Max-Forwards: 254
To: sip:j.user@example.com
From: sip:caller@example.net;tag=32394234
Call-ID: ncl.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Contact: <sip:caller@example53.example.net>
Content-Type: application/sdp
Content-Length: -999

"""
) + _rfc4475_sdp(b"192.0.2.53")
# RFC 4475 3.1.2.4 Request Scalar Fields with Overlarge Values (scalar02)
SCALAR02 = _crlf(
    b"""REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: """
    + b"1"
    + b"0" * 48
    + b"""
Contact: <sip:user@host129.example.com>;expires=280297596632815
Content-Length: 0

"""
)
# RFC 4475 3.1.2.7 <> Enclosing Request-URI (ltgtruri) and 3.1.2.8 embedded LWS (lwsruri)
LTGTRURI = _crlf(
    b"""INVITE <sip:user@example.com> SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=39291
Max-Forwards: 23
Call-ID: ltgtruri.1@192.0.2.5
CSeq: 1 INVITE
Via: SIP/2.0/UDP 192.0.2.5
Contact: <sip:caller@host5.example.net>
Content-Length: 0

"""
)
LWSRURI = _crlf(
    b"""INVITE sip:user@example.com; lr SIP/2.0
To: sip:user@example.com;tag=3xfe-9921883-z9f
From: sip:caller@example.net;tag=231413434
Max-Forwards: 5
Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423
CSeq: 2130706432 INVITE
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395
Content-Length: 0

"""
)
# RFC 4475 3.1.2.16 Unknown Protocol Version (badvers)
BADVERS = _crlf(
    b"""OPTIONS sip:t.watson@example.org SIP/7.0
Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw
Max-Forwards:     70
From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To:      T. Watson <sip:t.watson@example.org>
Call-ID: badvers.31417@c.example.com
CSeq:    1 OPTIONS
l: 0

"""
)
# RFC 4475 3.3.10 Response with Overlarge Status Code (bigcode)
BIGCODE = _crlf(
    b"""SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i
CSeq: 353494 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

"""
)
# RFC 4475 3.3.15 Missing Required Header Fields (insuf): no Call-ID, From or To
INSUF = _crlf(
    b"""INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Type: application/sdp
l: 152

"""
) + _rfc4475_sdp(b"192.0.2.95")

STUN_BINDING = bytes.fromhex("000100002112a442b7e7a701bc34d686fa87dfae")
HTTP_GET = b"GET / HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "empty"),
        (STUN_BINDING, "binary_junk"),
        (HTTP_GET, "not_sip"),
        (LTGTRURI, "bad_start_line"),
        (LWSRURI, "bad_start_line"),
        (b"SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n", "bad_status_code"),
        (BADVERS, "unsupported_version"),
        (BIGCODE, "bad_status_code"),
        (INSUF, "missing_call_id"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x@y\r\n\r\n", "missing_cseq"),
        (SCALAR02, "bad_cseq"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x@y\r\nCSeq: OPTIONS 1\r\n\r\n", "bad_cseq"),
        (NCL, "bad_content_length"),
        (CLERR, "truncated_body"),
        (
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x@y\r\nCSeq: 1 OPTIONS\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
            "header_too_long",
        ),
    ],
)
def test_named_errors(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_sip(data)
    assert err.value.reason == reason
    assert err.value.detail or reason == "empty"


# --- messages as real devices send them --------------------------------------------------------------

# Compact forms and a display name with stray backslashes, as a Nero SIPPS phone sent it
# (OISF suricata-verify, invite-compact-form-headers.pcap).
COMPACT_INVITE = (
    b"INVITE sip:97239287044@voip.brujula.net SIP/2.0\r\nv: SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bKnp1049"
    b'84053-44ce4a41192.168.1.2;rport\r\nf: \\"arik\\" <sip:816666@voip.brurjula.net>;tag=6433ef9\r\nt: <sip:97'
    b"239287044@voip.brujula.net>\r\nCall-ID: 105090259-446faf7a@192.168.1.2\r\nCSeq: 1 INVITE\r\nUser-Agent: N"
    b"ero SIPPS IP Phone Version 2.0.51.16\r\nExpires: 120\r\nAccept: application/sdp\r\nc: application/sdp\r\nl"
    b": 272\r\nContact: <sip:816666@192.168.1.2>\r\nMax-Forwards: 70\r\nAllow: INVITE, ACK, CANCEL, BYE, REFER, "
    b"OPTIONS, NOTIFY, INFO\r\n\r\nv=0\r\no=SIPPS 105015165 105015162 IN IP4 192.168.1.2\r\ns=SIP call\r\ni=Sessio"
    b"n Description Protocol\r\nu=https://www.sdp.proto\r\ne=j.doe@example.com (Jane Doe)\r\np=+1 617 555-6011 "
    b"(Jane Doe)\r\nc=IN IP4 192.168.1.2\r\nb=AS:64\r\nt=3034423619 3042462419\r\nr=604800 3600 0 90000\r\nz=288"
    b"2844526 -1h 2898848070 0\r\nk=prompt\r\na=sendrecv\r\nm=audio 30000 RTP/AVP 0 8 97 2 3\r\na=rtpmap:0 pcmu/8"
    b"000\r\n"
)


def test_compact_form_invite_from_a_real_phone() -> None:
    p = parse_sip(COMPACT_INVITE)
    assert p.call_id == "105090259-446faf7a@192.168.1.2"
    assert p.via_branch == "z9hG4bKnp104984053-44ce4a41192.168.1.2"
    assert (p.from_display, p.from_user, p.from_host, p.from_tag) == (
        "arik",
        "816666",
        "voip.brurjula.net",
        "6433ef9",
    )
    assert (p.to_user, p.to_tag) == ("97239287044", None)
    assert p.user_agent == "Nero SIPPS IP Phone Version 2.0.51.16"
    assert p.expires == 120 and p.max_forwards == 70
    assert p.contact == "sip:816666@192.168.1.2"
    # the phone's Content-Length (272) is 100 bytes short of its SDP: the body ends where
    # Content-Length says (as tshark reads it too), the rest is noted as trailing bytes
    assert p.content_type == "application/sdp" and len(p.body) == 272 and p.trailing == 100
    assert p.body.endswith(b"z=2882844") and "trailing_bytes" in p.notes
    assert p.sdp == SdpSummary(media_ip="192.168.1.2")


def test_sdp_codecs_static_and_rtpmap() -> None:
    # the same phone's SDP with its full length: rtpmap names as written, 8 and 3 static,
    # 97 (no rtpmap) and 2 (no longer static in RFC 3551) stay numbers
    body = COMPACT_INVITE[COMPACT_INVITE.index(b"\r\n\r\n") + 4 :]
    msg = COMPACT_INVITE.replace(b"l: 272", b"l: %d" % len(body))
    p = parse_sip(msg)
    assert p.trailing == 0
    assert p.sdp == SdpSummary(
        media_ip="192.168.1.2",
        audio_port=30000,
        codecs=["pcmu/8000", "PCMA/8000", "97", "2", "GSM/8000"],
        direction="sendrecv",
    )


# B-leg INVITE of a FreeSWITCH SBC with a multipart body holding two SDPs and a fake signature
# (a42437-ml thesis capture, b2bua-freeswitch-100-calls-ipv4-fragmented-invites.pcap).
_BOUNDARY = b"88a1692d-582c-475f-b064-a7c8d08d8061"
MULTIPART_BODY = _crlf(
    b"--" + _BOUNDARY + b"\n"
    b"Content-Type: application/sdp\n"
    b"Content-Length: 143\n"
    b"\n"
    b"v=0\n"
    b"o=user1 53655765 2353687637 IN IP4 38.242.140.216\n"
    b"s=Test\n"
    b"c=IN IP4 38.242.140.216\n"
    b"t=0 0\n"
    b"m=audio 6000 RTP/AVP 8\n"
    b"a=rtpmap:8 PCMA/8000\n"
    b"\n"
    b"--" + _BOUNDARY + b"\n"
    b"Content-Type: application/pkcs7-signature\n"
    b"Content-Length: 17\n"
    b"\n"
    b"S2YxamE1eUF2ak5P\n"
    b"--" + _BOUNDARY + b"\n"
    b"Content-Type: application/sdp\n"
    b"Content-Length: 235\n"
    b"\n"
    b"v=0\n"
    b"o=FreeSWITCH 1749440323 1749440324 IN IP4 178.18.244.71\n"
    b"s=FreeSWITCH\n"
    b"c=IN IP4 178.18.244.71\n"
    b"t=0 0\n"
    b"m=audio 32254 RTP/AVP 8 101\n"
    b"a=rtpmap:8 PCMA/8000\n"
    b"a=rtpmap:101 telephone-event/8000\n"
    b"a=fmtp:101 0-15\n"
    b"a=ptime:20\n"
    b"a=sendrecv\n"
    b"\n"
    b"--" + _BOUNDARY + b"--\n"
)
MULTIPART_INVITE = (
    _crlf(
        b"INVITE sip:22200@109.205.183.238 SIP/2.0\n"
        b"Via: SIP/2.0/UDP 178.18.244.71:5080;rport;branch=z9hG4bK6rN0U1y42m4pa\n"
        b"Max-Forwards: 79\n"
        b'From: "11100" <sip:11100@178.18.244.71>;tag=tQQQ29Ut819gg\n'
        b"To: <sip:22200@109.205.183.238>\n"
        b"Call-ID: 2df9094b-bfd1-123e-27a9-00505658449a\n"
        b"CSeq: 100182496 INVITE\n"
        b"Identity: RWN6UndoakNlQQ==;info=<https://cert.fake>;alg=ES256\n"
        b"Contact: <sip:gw+sipp_109@178.18.244.71:5080;transport=udp;gw=sipp_109>\n"
        b"User-Agent: FreeSWITCH-mod_sofia/1.10.12-release-10222002881-a88d069d6f+git~20240802T210227Z~a88d069d6f~64bit\n"
        b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY\n"
        b"Supported: timer, path, replaces\n"
        b"Allow-Events: talk, hold, conference, refer\n"
        b"Content-Type: multipart/mixed;boundary=" + _BOUNDARY + b"\n"
        b"Content-Length: 733\n"
        b"X-Covert-Data: S2YxamE1eUF2ak5P\n"
        b"X-Covert-Data-1: S2YxamE1eUF2ak5P\n"
        b"X-cid: 1-1342@38.242.140.216\n"
        b"X-FS-Support: update_display,send_info\n"
        b'Remote-Party-ID: "11100" <sip:11100@178.18.244.71>;party=calling;screen=yes;privacy=off\n'
        b"\n"
    )
    + MULTIPART_BODY
)


def test_multipart_body_sdp_and_b2bua_correlation_header() -> None:
    assert len(MULTIPART_BODY) == 733
    p = parse_sip(MULTIPART_INVITE, ["X-CID", "P-Charging-Vector", "Session-ID"])
    assert p.content_type == "multipart/mixed"
    # the first application/sdp part is summarised
    assert p.sdp == SdpSummary(media_ip="38.242.140.216", audio_port=6000, codecs=["PCMA/8000"])
    assert p.correlation_id == "1-1342@38.242.140.216"  # "X-cid" matches the configured "X-CID"
    assert p.pai_user == "11100"  # no P-Asserted-Identity: Remote-Party-ID is the fallback
    assert p.from_display == "11100"
    assert p.contact == "sip:gw+sipp_109@178.18.244.71:5080;transport=udp;gw=sipp_109"
    assert p.max_forwards == 79


# An IMS-style INVITE written for these tests: tel: URIs, PAI list with a comma inside a quoted
# display name, Diversion, P-Charging-Vector, Session-ID, Proxy-Authorization, two Via rows with
# comma-joined values, Reason on a re-sent request, SDP with media-level c= and direction.
IMS_INVITE = _crlf(
    b"""INVITE tel:+61289707501;phone-context=+61 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---abc,SIP/2.0/UDP 192.0.2.11;branch=z9hG4bKx
Via: SIP/2.0/TCP 192.0.2.12:5060;branch=z9hG4bKy
Max-Forwards: 68
From: "Smith, John" <sip:+61299990000@ims.example.net;user=phone>;tag=a1b2c3
To: <tel:0289707501>
Call-ID: 7f3a@192.0.2.10
CSeq: 2 INVITE
Contact: <sip:+61299990000@192.0.2.10:5060;transport=udp>;expires=300;+sip.instance="<urn:uuid:1>"
P-Asserted-Identity: "Smith, John" <sip:+61299990000@ims.example.net;user=phone>, <tel:+61299990000>
Diversion: <tel:+61255550000>;reason=unconditional;counter=1, <sip:0411000000@gw.example.net>;reason=busy
P-Charging-Vector: icid-value="AyretyU0dm+6O2IrT5tAFrbHLso=023551024";orig-ioi=home1.example.net
Session-ID: ab30317f1a784dc48ff824d0d3715d86;remote=00000000000000000000000000000000
Proxy-Authorization: Digest username="+61299990000@ims.example.net", realm="ims.example.net", nonce="x"
Reason: SIP;cause=580;text="Precondition Failure", Q.850;cause=16;text="Terminated"
Content-Type: application/sdp
Content-Length: 203

v=0
o=- 1 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.99
t=0 0
a=sendonly
m=audio 40000 RTP/AVP 9 0 96
c=IN IP4 192.0.2.100
a=rtpmap:96 AMR-WB/16000/1
a=recvonly
m=video 0 RTP/AVP 34
a=inactive
"""
)


def test_tel_uris_lists_and_ims_headers() -> None:
    p = parse_sip(IMS_INVITE, ["X-CID", "P-Charging-Vector", "Session-ID"])
    assert p.ruri == "tel:+61289707501;phone-context=+61"
    assert (p.ruri_user, p.ruri_host) == ("+61289707501", None)
    assert (p.to_user, p.to_host, p.to_tag) == ("0289707501", None, None)
    assert (p.from_display, p.from_user, p.from_host, p.from_tag) == (
        "Smith, John",
        "+61299990000",
        "ims.example.net",
        "a1b2c3",
    )
    assert p.via_count == 3
    assert p.via_branch == "z9hG4bK-524287-1---abc"
    assert p.pai_user == "+61299990000"
    assert p.diversion_user == "+61255550000"
    assert p.correlation_id == "AyretyU0dm+6O2IrT5tAFrbHLso=023551024"
    assert parse_sip(IMS_INVITE, ["Session-ID"]).correlation_id == "ab30317f1a784dc48ff824d0d3715d86"
    assert parse_sip(IMS_INVITE).correlation_id is None
    assert p.auth_user == "+61299990000@ims.example.net"
    assert (p.q850_cause, p.reason_text) == (16, "Terminated")
    assert p.contact == "sip:+61299990000@192.0.2.10:5060;transport=udp"
    assert p.contact_expires == 300 and p.expires is None
    assert p.sdp == SdpSummary(
        media_ip="192.0.2.100",
        audio_port=40000,
        video_port=0,
        codecs=["G722/8000", "PCMU/8000", "AMR-WB/16000/1"],
        direction="recvonly",
    )


HISTORY_INFO_INVITE = _crlf(
    b"""INVITE sip:+61400000000@192.0.2.20 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.21;branch=z9hG4bKhi1
From: <sip:+61299990000@example.net>;tag=9
To: <sip:+61255550000@example.net>
Call-ID: hi-1@192.0.2.21
CSeq: 1 INVITE
History-Info: <sip:+61255550000@example.net?Reason=SIP%3Bcause%3D302>;index=1
History-Info: <sip:+61400000000@192.0.2.20>;index=1.1
Content-Length: 0

"""
)


def test_history_info_is_the_diversion_fallback() -> None:
    p = parse_sip(HISTORY_INFO_INVITE)
    assert p.diversion_user == "+61255550000"
    single_entry = HISTORY_INFO_INVITE.replace(b"History-Info: <sip:+61400000000@192.0.2.20>;index=1.1\r\n", b"")
    assert parse_sip(single_entry).diversion_user is None  # not retargeted


# RFC 3261 24.2 REGISTER (second, authenticated attempt), bare LF line ends, Expires header
REGISTER_LF = b"""REGISTER sips:ss2.biloxi.example.com SIP/2.0
Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashd92
Max-Forwards: 70
From: Bob <sips:bob@biloxi.example.com>;tag=ja743ks76zlflH
To: Bob <sips:bob@biloxi.example.com>
Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com
CSeq: 2 REGISTER
Contact: <sips:bob@client.biloxi.example.com>
Authorization: Digest username="bob", realm="atlanta.example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", opaque="", uri="sips:ss2.biloxi.example.com", response="dfe56131d1958046689d83306477ecc"
Expires: 3600
Content-Length: 0

"""


def test_rfc3261_register_with_bare_lf_line_ends() -> None:
    p = parse_sip(REGISTER_LF)
    assert p.method == "REGISTER" and p.ruri_host == "ss2.biloxi.example.com"
    assert (p.from_display, p.from_user, p.from_host, p.from_tag) == (
        "Bob",
        "bob",
        "biloxi.example.com",
        "ja743ks76zlflH",
    )
    assert p.auth_user == "bob"
    assert p.expires == 3600 and p.contact == "sips:bob@client.biloxi.example.com"
    assert "bare_lf" in p.notes


def test_anomalies_are_noted_not_fatal() -> None:
    # RFC 4475 3.3.? style duplicates: two Call-IDs, a CSeq method that does not match
    msg = _crlf(
        b"""\n\nINVITE sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 OPTIONS
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
Max-Forwards: 5
Bogus line without a colon

"""
    )
    p = parse_sip(msg)
    assert p.call_id == "multi01.98asdh@192.0.2.1"  # the first wins
    assert set(p.notes) >= {
        "leading_crlf",
        "duplicate_header",
        "cseq_method_mismatch",
        "malformed_header_line",
        "missing_content_length",
    }


def test_memoryview_and_bytearray_inputs() -> None:
    assert parse_sip(memoryview(NOREASON)).call_id == "noreason.asndj203insdf99223ndf"
    assert parse_sip(bytearray(NOREASON)).call_id == "noreason.asndj203insdf99223ndf"


def test_compact_form_table_is_complete() -> None:
    # RFC 3261 7.3.3 plus the compact forms registered by later RFCs
    assert COMPACT_FORMS == {
        "a": "accept-contact",
        "b": "referred-by",
        "c": "content-type",
        "d": "request-disposition",
        "e": "content-encoding",
        "f": "from",
        "i": "call-id",
        "j": "reject-contact",
        "k": "supported",
        "l": "content-length",
        "m": "contact",
        "n": "identity-info",
        "o": "event",
        "r": "refer-to",
        "s": "subject",
        "t": "to",
        "u": "allow-events",
        "v": "via",
        "x": "session-expires",
        "y": "identity",
    }


def test_memoised_sub_parsers_change_no_result_and_share_no_mutable_object() -> None:
    clear_caches()
    cold = [parse_sip(m, ["X-CID"]) for m in (WSINV, IMS_INVITE, MULTIPART_INVITE, COMPACT_INVITE)]
    warm = [parse_sip(m, ["X-CID"]) for m in (WSINV, IMS_INVITE, MULTIPART_INVITE, COMPACT_INVITE)]
    assert warm == cold
    warm[0].sdp.codecs.append("mutated")  # type: ignore[union-attr]
    warm[0].headers["call-id"] = "mutated"
    again = parse_sip(WSINV)
    assert again.sdp.codecs == ["PCMU/8000", "QCELP/8000"]  # type: ignore[union-attr]
    assert again.call_id == "wsinv.ndaksdj@192.0.2.1"


# --- property tests: nothing but SipParseError, on anything ------------------------------------------

REAL_MESSAGES = [
    WSINV,
    INTMETH,
    ESC01,
    ESCNULL,
    LONGREQ,
    DBLREQ_REGISTER + DBLREQ_INVITE,
    NOREASON,
    COMPACT_INVITE,
    MULTIPART_INVITE,
    IMS_INVITE,
    REGISTER_LF,
]
CORRELATION = ["X-CID", "P-Charging-Vector", "Session-ID"]


def _only_named_errors(data: bytes) -> None:
    try:
        parse_sip(data, CORRELATION)
    except SipParseError as exc:
        assert exc.reason != "internal_error", exc.detail


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_raise_only_named_errors(data: bytes) -> None:
    _only_named_errors(data)


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(REAL_MESSAGES)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"\r\n", b" ", b":", b";", b",", b'"', b"<", b">", b"\x00", b"\xff", b"\n "])
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == "truncate":
            del data[pos:]
        elif op == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 200))]
    return bytes(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_mutated_real_messages_raise_only_named_errors(data: bytes) -> None:
    _only_named_errors(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_in_a_header_value_parses_or_fails_by_name(value: str) -> None:
    for name in ("From", "To", "Contact", "Via", "P-Asserted-Identity", "Reason", "Content-Type", "CSeq"):
        msg = (
            "INVITE sip:a@example.com SIP/2.0\r\nCall-ID: c@h\r\nCSeq: 1 INVITE\r\n"
            f"{name}: {value}\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
        ).encode("utf-8", "surrogatepass")
        _only_named_errors(msg)
