"""Golden test: our pcap reader + SIP parser against tshark on every shared third-party capture.

For every capture in ``../shared/testdata/pcaps`` (SOURCES.md there describes them), tshark's SIP
dissector (``-Y sip``, with its own IP/TCP reassembly) is the reference. For every SIP message tshark
finds we must find the same one, in the same frame, with the same

    (frame, transport, src ip, src port, dst ip, dst port, method or status, Call-ID, CSeq number,
     From user, To user)

and the same capture time; and we must find nothing tshark does not. Several SIP messages in one
frame (TCP) are several entries. Where tshark and we legitimately differ, the difference is listed
below with its reason; an exception that no longer happens fails the test too, so the list stays true.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from producers.pcap_source import Counters, iter_payloads
from producers.sip_parser import SipParseError, parse_sip

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
PCAPS = TESTDATA / "pcaps"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/testdata is absent"),
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

CAPTURES = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap")) if PCAPS.is_dir() else []

Key = tuple[Any, ...]

# -- the explicit differences --------------------------------------------------------------------

TSHARK_DECODE_AS: dict[str, tuple[list[str], str]] = {
    "attack-register-bruteforce-single-ip.pcap": (
        ["-d", "udp.port==1293,sip"],
        "frames 1974-1979 come from UDP source port 1293, PacketCable's registered port: tshark "
        "dissects them as PKTC by port, not as SIP. They are plain SIP to 5060 (REGISTER/401); we "
        "keep them, so tshark is told to decode that port as SIP.",
    ),
}

# (capture, frame) -> {field: (tshark value, our value)}, reason
FIELD_DIFFERENCES: dict[tuple[str, int], tuple[dict[str, tuple[Any, Any]], str]] = {
    ("invite-488-not-acceptable-codec.pcapng", 5): (
        {"to_user": (None, "s")},
        "To: sip:s@176.132.182.27:5060: tshark 4.0 shows no user part for a one-character user "
        "(it also drops it from the Request-URI); the user is 's'.",
    ),
    ("invite-488-not-acceptable-codec.pcapng", 6): (
        {"to_user": (None, "s")},
        "the 200 answering frame 5: same one-character To user.",
    ),
}

# captures where neither tshark nor we may find SIP, with what our reader counts instead
NO_SIP: dict[str, tuple[dict[str, int], str]] = {
    "hep3-sip-invite-407-options-publish.pcap": (
        {"not_sip": 8},
        "SIP encapsulated in HEPv3 on UDP 9060: the HEP collector's job, not the pcap reader's.",
    ),
    "hep3-compressed-register-401-200.pcapng": (
        {"not_sip": 21},
        "SIP in zlib-compressed HEPv3 chunks on UDP 9060: the HEP collector's job.",
    ),
    "tls-5061-appdata-only-no-handshake.pcap": (
        {"tls_undecryptable": 12},
        "SIP over TLS on 5061 without handshake or keys: every packet is counted, none decoded.",
    ),
}

# payloads our reader delivers that the parser rejects (tshark shows none of them as SIP, or as
# SIP with a method we refuse): capture -> {frame: reason}
PARSER_REJECTIONS: dict[str, dict[int, str]] = {
    # PROTOS c07 test cases on UDP 5060: we hand every non-keep-alive datagram of a SIP port to the
    # parser so that a malformed message reaches sip.rejected with its reason. tshark shows 12 of
    # them as SIP (INVITE and the "aaaa..." overflow methods, which the parser accepts as tokens too);
    # the others it shows as "data". The parser names them:
    "protos-c07-sip-malformed-invites.cap": {
        4: "bad_start_line",  # empty method: " sip:tori@localhost SIP/2.0"
        # 16000-byte request lines of "aaaa...": past the parser's 8 KiB start-line limit
        **{frame: "not_sip" for frame in range(16, 20)},
        # methods of non-ASCII bytes (0xe5 0xe4 0xf6 ...): not a token
        **{frame: "bad_start_line" for frame in range(20, 31)},
        31: "not_sip",  # the same, with a request line past 8 KiB
        # methods of spaces only
        **{frame: "bad_start_line" for frame in range(32, 40)},
    },
}


# -- tshark side ---------------------------------------------------------------------------------


def _find(tree: Any, key: str) -> Any:
    """First value of ``key`` anywhere under ``tree`` (tshark JSON nests fields in *_tree dicts)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        children = tree.values()
    elif isinstance(tree, list):
        children = tree
    else:
        return None
    for child in children:
        found = _find(child, key)
        if found is not None:
            return found
    return None


def _one(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _last(value: Any) -> Any:
    """Innermost of repeated layers (ERSPAN/GRE: outer IP first, then the mirrored packet's IP)."""
    return value[-1] if isinstance(value, list) else value


def _transport(protocols: str) -> str:
    layers = protocols.split(":")
    if "websocket" in layers:
        return "ws"
    for name in ("sctp", "tcp", "udp"):
        if name in layers:
            return name
    return "?"


def tshark_messages(path: Path, extra: list[str]) -> list[tuple[Key, float]]:
    cmd = ["tshark", "-r", str(path), *extra, "-Y", "sip", "-T", "json", "-J", "frame ip ipv6 udp tcp sctp sip"]
    cmd.append("--no-duplicate-keys")
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=300).stdout
    messages = []
    for packet in json.loads(out or b"[]"):
        layers = packet["_source"]["layers"]
        frame = layers["frame"]
        transport = _transport(frame["frame.protocols"])
        ip = _last(layers.get("ip") or layers.get("ipv6"))
        src = ip.get("ip.src") or ip.get("ipv6.src")
        dst = ip.get("ip.dst") or ip.get("ipv6.dst")
        l4 = _last(layers.get({"ws": "tcp"}.get(transport, transport)))
        prefix = {"ws": "tcp"}.get(transport, transport)
        sport, dport = int(_one(l4[f"{prefix}.srcport"])), int(_one(l4[f"{prefix}.dstport"]))
        sips = layers["sip"] if isinstance(layers["sip"], list) else [layers["sip"]]
        for sip in sips:
            request = sip.get("sip.Request-Line_tree", {})
            status = sip.get("sip.Status-Line_tree", {})
            headers = sip.get("sip.msg_hdr_tree", {})
            key = (
                int(frame["frame.number"]),
                transport,
                src,
                sport,
                dst,
                dport,
                _one(request.get("sip.Method")) or _one(status.get("sip.Status-Code")),
                _one(headers.get("sip.Call-ID")),
                _one(_find(headers.get("sip.CSeq_tree"), "sip.CSeq.seq")),
                _one(_find(headers.get("sip.From_tree"), "sip.from.user")),
                _one(_find(headers.get("sip.To_tree"), "sip.to.user")),
            )
            messages.append((key, float(frame["frame.time_epoch"])))
    return messages


# -- our side ------------------------------------------------------------------------------------


def our_messages(path: Path) -> tuple[list[tuple[Key, float]], dict[int, str], Counters]:
    counters = Counters()
    messages = []
    rejected: dict[int, str] = {}
    for p in iter_payloads(path, counters):
        try:
            m = parse_sip(p.data)
        except SipParseError as exc:
            rejected[p.frame] = exc.reason
            continue
        what = m.method if m.is_request else str(m.status_code)
        key = (p.frame, p.transport, p.src_ip, p.src_port, p.dst_ip, p.dst_port)
        key += (what, m.call_id, str(m.cseq_num), m.from_user, m.to_user)
        messages.append((key, p.ts))
    return messages, rejected, counters


_FIELDS = (
    "frame",
    "transport",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "what",
    "call_id",
    "cseq",
    "from_user",
    "to_user",
)


def _apply_field_differences(capture: str, tshark: list[tuple[Key, float]]) -> tuple[list[tuple[Key, float]], int]:
    """tshark's keys with the listed known differences replaced by our value; and how many applied."""
    fixed, applied = [], 0
    for key, ts in tshark:
        diff = FIELD_DIFFERENCES.get((capture, key[0]))
        if diff is not None:
            values = list(key)
            for field, (theirs, ours) in diff[0].items():
                i = _FIELDS.index(field)
                assert values[i] == theirs, f"{capture} frame {key[0]}: listed difference on {field} is stale"
                values[i] = ours
            key = tuple(values)
            applied += 1
        fixed.append((key, ts))
    return fixed, applied


@pytest.mark.parametrize("capture", CAPTURES)
def test_same_sip_messages_as_tshark(capture: str) -> None:
    path = PCAPS / capture
    extra = TSHARK_DECODE_AS.get(capture, ([], ""))[0]
    theirs, applied = _apply_field_differences(capture, tshark_messages(path, extra))
    ours, rejected, counters = our_messages(path)

    assert applied == sum(1 for (cap, _frame) in FIELD_DIFFERENCES if cap == capture)
    assert rejected == PARSER_REJECTIONS.get(capture, {}), f"parser rejections: {rejected}"
    their_keys = Counter(key for key, _ in theirs)
    our_keys = Counter(key for key, _ in ours)
    missing = sorted(their_keys - our_keys)
    extra_found = sorted(our_keys - their_keys)
    assert not missing and not extra_found, f"tshark only: {missing[:5]}\nours only: {extra_found[:5]}"

    their_ts = {key[0]: ts for key, ts in theirs}
    for key, ts in ours:
        assert abs(ts - their_ts[key[0]]) < 2e-6, f"frame {key[0]}: ts {ts} != tshark {their_ts[key[0]]}"

    if capture in NO_SIP:
        expected_counts, _why = NO_SIP[capture]
        assert not theirs and not ours
        for reason, n in expected_counts.items():
            assert counters[reason] == n, (reason, dict(counters))
    else:
        assert theirs, "tshark finds SIP in every other capture"
    # nothing in these captures is cut short or unreadable at the file level
    assert counters["truncated_file"] == 0 and counters["corrupt_file"] == 0


def test_every_capture_is_covered() -> None:
    """The exception tables only name captures that exist (a renamed file must not hide a difference)."""
    named = set(TSHARK_DECODE_AS) | set(NO_SIP) | set(PARSER_REJECTIONS) | {cap for cap, _ in FIELD_DIFFERENCES}
    assert named <= set(CAPTURES)
    assert len(CAPTURES) >= 32


def test_decode_as_is_needed() -> None:
    """Without the decode-as override tshark misses exactly the PKTC-port frames (so it is still needed)."""
    capture = "attack-register-bruteforce-single-ip.pcap"
    plain = Counter(key[0] for key, _ in tshark_messages(PCAPS / capture, []))
    forced = Counter(key[0] for key, _ in tshark_messages(PCAPS / capture, TSHARK_DECODE_AS[capture][0]))
    assert sorted((forced - plain).elements()) == [1974, 1975, 1976, 1977, 1978, 1979]


def test_protos_malformed_invites_never_crash() -> None:
    """PROTOS c07: 12 messages parse (tshark's 12), every other one is rejected with a reason."""
    ours, rejected, counters = our_messages(PCAPS / "protos-c07-sip-malformed-invites.cap")
    assert len(ours) == 12
    assert Counter(rejected.values()) == Counter(PARSER_REJECTIONS["protos-c07-sip-malformed-invites.cap"].values())
    assert counters["not_sip"] == 2  # the two NetBIOS name service frames
