"""``sipscope loadgen`` to a pcap: determinism, valid frames, every message parsed, the outcome mix kept.

The ground truth is the generator's own plan (one record per session): every generated call must come
back from the offline correlation (``streams.analyze``) as one summary with the planned outcome.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from producers.loadgen import (
    Attack,
    Dist,
    Generator,
    PcapOutput,
    Profile,
    ProfileError,
    pump,
)
from producers.loadgen.cli import build_profile, parse_duration, parse_start
from producers.loadgen.frames import FrameBuilder, ones_sum
from producers.loadgen.profile import parse_attack, parse_curve, parse_dist, parse_mix
from producers.pcapfile import open_capture
from streams.analyze import analyze_file

ROOT = Path(__file__).resolve().parents[2]


def write_pcap(path: Path, prof: Profile) -> list[dict]:
    """Generate ``prof`` into ``path``; returns the plan (one dict per session)."""
    plan: list[dict] = []
    with path.open("wb") as f:
        out = PcapOutput(f)
        pump(Generator(prof, on_session=lambda s: plan.append(s.plan())).messages(), out)
        out.close()
    return plan


def loadgen_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "producers.loadgen", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


# -- determinism -------------------------------------------------------------------------------------

def test_same_seed_same_bytes_different_seed_different_bytes(tmp_path):
    prof = {"cps": 20, "duration": 30, "reg_rate": 3, "attacks": [Attack("scan", 5, 5, 10)]}
    a, b, c = tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "c.pcap"
    write_pcap(a, Profile(seed=7, **prof))
    write_pcap(b, Profile(seed=7, **prof))
    write_pcap(c, Profile(seed=8, **prof))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_cli_is_deterministic_and_matches_the_library(tmp_path):
    args = ["--cps", "20", "--duration", "30", "--reg-rate", "3", "--seed", "11", "--quiet"]
    r1 = loadgen_cli("--out", str(tmp_path / "1.pcap"), *args)
    r2 = loadgen_cli("--out", str(tmp_path / "2.pcap"), *args, "--plan", str(tmp_path / "plan.jsonl"))
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert (tmp_path / "1.pcap").read_bytes() == (tmp_path / "2.pcap").read_bytes()
    write_pcap(tmp_path / "lib.pcap", Profile(cps=20, duration=30, reg_rate=3, seed=11))
    assert (tmp_path / "lib.pcap").read_bytes() == (tmp_path / "1.pcap").read_bytes()
    summary = json.loads(r1.stderr.split("sipscope loadgen: ", 1)[1])
    plan = [json.loads(line) for line in (tmp_path / "plan.jsonl").read_text().splitlines()]
    assert summary["messages"] == sum(p["messages"] for p in plan)
    assert summary["sessions"] == dict(Counter(p["kind"] for p in plan))


def test_adding_an_attack_does_not_change_the_calls(tmp_path):
    base = write_pcap(tmp_path / "a.pcap", Profile(seed=3, cps=10, duration=20))
    with_attack = write_pcap(tmp_path / "b.pcap", Profile(seed=3, cps=10, duration=20,
                                                          attacks=[Attack("flood", 2, 5, 20)]))
    assert [p for p in with_attack if p["kind"] == "call"] == base


# -- valid frames, parsed by sipscope and by tshark -------------------------------------------------

def _checksum_loop(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\xff\xff", b"\x01", b"\xff\xff\xff\xff\x00\x01",
                                  bytes(range(256)) * 3 + b"x", b"INVITE sip:x SIP/2.0\r\n" * 40])
def test_ones_sum_matches_the_word_loop(data):
    assert ones_sum(data) == _checksum_loop(data)


def test_frame_headers_and_checksums():
    payload = b"OPTIONS sip:100@10.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n!"  # odd length
    frame = FrameBuilder().frame("203.0.113.5", 5062, "10.10.0.10", 5060, payload)
    assert frame[12:14] == b"\x08\x00" and frame[0:2] == b"\x02\x00"
    ip, udp = frame[14:34], frame[34:42]
    assert ip[0] == 0x45 and ip[9] == 17 and struct.unpack("!H", ip[2:4])[0] == 28 + len(payload)
    assert _checksum_loop(ip) == 0xFFFF  # a correct header sums to all ones
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, 8 + len(payload))
    assert _checksum_loop(pseudo + udp + payload) == 0xFFFF
    assert struct.unpack("!HHH", udp[:6]) == (5062, 5060, 8 + len(payload))
    assert frame[42:] == payload


@pytest.fixture(scope="module")
def mixed_capture(tmp_path_factory) -> tuple[Path, list[dict]]:
    """60 s at 20 CPS with registrations and all four attacks."""
    path = tmp_path_factory.mktemp("loadgen") / "mixed.pcap"
    prof = Profile(seed=5, cps=20, duration=60, reg_rate=4, attacks=[
        Attack("scan", 10, 10, 20), Attack("bruteforce", 15, 10, 3), Attack("flood", 20, 5, 30),
        Attack("wangiri", 25, 20, 2)])
    return path, write_pcap(path, prof)


def test_sipscope_parse_takes_every_message_and_rejects_none(mixed_capture):
    path, plan = mixed_capture
    r = subprocess.run([sys.executable, "-m", "sipscope.cli", "parse", str(path), "--rejected"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stderr.strip().splitlines()[-1].split("sipscope parse: ", 1)[1])
    expected = sum(p["messages"] for p in plan)
    assert summary["rejected"] == {}
    assert summary["messages"] == expected == len(r.stdout.splitlines())
    assert set(summary["skipped"]) <= {"packets", "payloads_udp"}


def test_capture_times_are_simulated_and_ordered(mixed_capture):
    path, plan = mixed_capture
    with open_capture(path) as reader:
        times = [pkt[0] for pkt in reader]
    assert times == sorted(times)
    assert times[0] >= Profile().start and min(p["start"] for p in plan) == pytest.approx(times[0], abs=1e-6)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_agrees_on_the_count_and_finds_nothing_wrong(mixed_capture):
    path, plan = mixed_capture
    fields = subprocess.run(["tshark", "-r", str(path), "-Y", "sip", "-T", "fields", "-e", "sip.Call-ID"],
                            capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    assert len(fields) == sum(p["messages"] for p in plan)
    assert set(fields) == {p["call_id"] for p in plan}
    bad = subprocess.run(["tshark", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                          "-Y", ("ip.checksum.status != 1 || udp.checksum.status != 1 || _ws.malformed || "
                                "_ws.expert.severity >= 6291456")],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert bad == ""


# -- what the correlation makes of it --------------------------------------------------------------

def test_every_call_comes_back_with_its_planned_outcome(mixed_capture):
    path, plan = mixed_capture
    report = analyze_file(str(path), extra_engines=[])
    calls = {c.call_id: c for c in report.calls}
    planned_calls = [p for p in plan if p["kind"] in ("call", "flood", "wangiri")]
    assert len(calls) == len(planned_calls)
    for p in planned_calls:
        c = calls[p["call_id"]]
        assert (c.outcome, c.final_status, c.retransmissions, c.messages) == (
            p["outcome"], p["final"], 0, p["messages"]), p
        if p["outcome"] == "answered":
            assert c.hangup_by == p["hangup"] and c.end_reason == "bye"
            assert c.answer_ts == pytest.approx(p["answer"], abs=1e-5)
            assert c.bye_ts == pytest.approx(p["end"], abs=1e-5)
    regs = {r.call_id: r for r in report.registrations}
    for p in plan:
        if p["kind"] in ("register", "bruteforce"):
            r = regs[p["call_id"]]
            assert r.outcome == ("ok" if p["final"] == 200 else "failed")
            assert (r.challenges, r.attempts) == ((1, 2) if p["challenged"] else (0, 1))


def test_outcome_mix_within_tolerance(tmp_path):
    mix = {"answered": 0.5, "busy": 0.1, "no_answer": 0.15, "cancelled": 0.1, "failed": 0.05, "rejected": 0.1}
    path = tmp_path / "mix.pcap"
    # ~3000 calls: a share's binomial standard deviation is at most 0.9 points; tolerance 3 points
    write_pcap(path, Profile(seed=21, cps=50, duration=60, mix=mix, hold=Dist("exp", 30.0)))
    calls = analyze_file(str(path), extra_engines=[]).calls
    assert len(calls) > 2700
    shares = Counter(c.outcome for c in calls)
    for outcome, share in mix.items():
        assert shares[outcome] / len(calls) == pytest.approx(share, abs=0.03), (outcome, shares)
    answered = [c for c in calls if c.outcome == "answered"]
    mean_hold = sum(c.duration_s for c in answered) / len(answered)
    assert mean_hold == pytest.approx(30.0, rel=0.1)
    pdds = sorted(c.pdd_ms for c in calls if c.outcome in ("answered", "no_answer"))
    assert sum(pdds) / len(pdds) / 1000 == pytest.approx(1.5, rel=0.1)  # the default PDD, lognormal mean 1.5 s


def test_trunks_and_number_plans(tmp_path):
    path = tmp_path / "trunks.pcap"
    plan = write_pcap(path, Profile(seed=2, cps=20, duration=30))
    by_trunk = Counter(p["trunk"] for p in plan)
    assert set(by_trunk) == {"carrier-a", "carrier-b", "mobile-c"}
    assert by_trunk["carrier-a"] > by_trunk["carrier-b"] > by_trunk["mobile-c"]  # weights 0.5 / 0.3 / 0.2
    for p in plan:
        peer = p["src"] if p["dst"] == "10.10.0.10" else p["dst"]
        own = p["caller"] if peer == p["src"] else p["callee"]
        prefix = {"carrier-a": ("6128", "6129"), "carrier-b": ("6138", "6139"),
                  "mobile-c": ("6141", "6142", "6143")}[p["trunk"]]
        assert own.startswith(prefix) and len(own) == 11
        net = {"carrier-a": "203.0.113.", "carrier-b": "198.51.100.", "mobile-c": "192.0.2."}[p["trunk"]]
        assert peer.startswith(net)
    directions = Counter((p["trunk"], p["src"] == "10.10.0.10") for p in plan)
    assert directions[("carrier-b", True)] and directions[("carrier-b", False)]  # "both"
    assert not directions[("carrier-a", True)]  # "in" only


# -- profile and options -----------------------------------------------------------------------------

def test_text_forms():
    assert parse_dist("exp:120") == Dist("exp", 120.0)
    assert parse_dist("lognormal:90:0.5", cap=100) == Dist("lognormal", 90.0, 0.5, 100)
    assert parse_dist("uniform:1:3").expected() == 2.0
    assert parse_dist("45") == Dist("exp", 45.0)
    assert parse_mix("answered=3,no-answer=1,cancel=1") == {"answered": 3.0, "no_answer": 1.0, "cancelled": 1.0}
    assert parse_curve("business")[10] == 1.0 and len(parse_curve(",".join(["1"] * 24))) == 24
    a = parse_attack("wangiri:start=10:30,duration=600,rate=2,src=198.18.1.1:5060", start_of_day=0.0, start=3600.0)
    assert (a.kind, a.start, a.duration, a.rate, a.src) == ("wangiri", 9.5 * 3600, 600.0, 2.0, "198.18.1.1:5060")
    assert parse_duration("10m") == 600 and parse_duration("1d") == 86400 and parse_duration("90") == 90
    assert parse_start("2025-01-06T10:00:00", now=0) == 1736157600.0
    assert parse_start("today", now=1736157600.5) == 1736121600.0
    for bad in ("weibull:3", "uniform:3:1", "exp:x"):
        with pytest.raises(ProfileError):
            parse_dist(bad)
    for bad, fn in (("answered=x", parse_mix), ("talking=1", parse_mix), ("1,2,3", parse_curve),
                    ("ddos:rate=1", parse_attack), ("scan:speed=3", parse_attack)):
        with pytest.raises(ProfileError):
            fn(bad)


def test_profile_file_and_options(tmp_path):
    (tmp_path / "p.toml").write_text('seed = 9\ncps = 5.0\nhold = "lognormal:180:0.9"\ncurve = "evening"\n'
                                     '[[trunks]]\nname = "x"\ncidr = "192.0.2.0/24"\nprefixes = ["4420"]\n')
    r = loadgen_cli("--out", str(tmp_path / "x.pcap"), "--profile", str(tmp_path / "p.toml"), "--cps", "7",
                    "--print-profile")
    assert r.returncode == 0, r.stderr
    prof = json.loads(r.stdout)
    assert (prof["seed"], prof["cps"], prof["hold"]["kind"], prof["hold"]["mean"]) == (9, 7.0, "lognormal", 180.0)
    assert prof["curve"][19] == 1.0 and [t["name"] for t in prof["trunks"]] == ["x"]
    r = loadgen_cli("--out", str(tmp_path / "x.pcap"), "--mix", "talking=1")
    assert r.returncode == 2 and "bad mix entry" in r.stderr


def test_tail_bounds_a_run_and_keeps_dialogs_complete(tmp_path):
    prof = Profile(seed=6, cps=30, duration=20, tail=5, hold=Dist("exp", 300.0))
    plan = write_pcap(tmp_path / "tail.pcap", prof)
    end = prof.start + prof.duration + prof.tail
    assert max(p["end"] for p in plan) <= end + 0.1
    answered = [p for p in plan if p["outcome"] == "answered"]
    cut = [p for p in answered if p["end"] > prof.start + prof.duration]
    assert len(cut) > len(answered) / 2  # 300 s holds: most calls are hung up inside the tail window
    calls = analyze_file(str(tmp_path / "tail.pcap"), extra_engines=[]).calls
    assert sorted(c.outcome for c in calls) == sorted(p["outcome"] for p in plan)
    assert {c.end_reason for c in calls if c.outcome == "answered"} == {"bye"}


def test_realtime_outputs_start_now_and_pcap_at_the_fixed_day():
    import argparse

    from producers.loadgen.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    pcap = build_profile(parser.parse_args(["loadgen", "--out", "x.pcap"]), now=2e9)
    hep = build_profile(parser.parse_args(["loadgen", "--hep", "127.0.0.1:9060"]), now=2e9)
    assert pcap.start == Profile().start and hep.start == 2e9
    assert pcap.tail < 0 and hep.tail == 30.0  # natural hold times in a file, bounded live runs
