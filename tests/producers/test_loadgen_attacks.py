"""Injected attacks look like the real thing: sipscope's own detectors (``streams/anomaly``) raise the
matching alert against the attacker's address, and the same traffic without attacks raises none of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.loadgen import Attack, Generator, PcapOutput, Profile, pump
from streams.analyze import analyze_file

ATTACK_ALERTS = {"scanner_user_agent", "extension_enumeration", "registration_bruteforce", "invite_flood",
                 "short_call_burst"}


def capture(path: Path, attacks: list[Attack]) -> Path:
    with path.open("wb") as f:
        out = PcapOutput(f)
        pump(Generator(Profile(seed=13, cps=2, duration=300, reg_rate=1, attacks=attacks)).messages(), out)
        out.close()
    return path


@pytest.fixture(scope="module")
def alerts(tmp_path_factory) -> set[tuple[str, str]]:
    attacks = [Attack("scan", 30, 30, 20), Attack("bruteforce", 60, 60, 2), Attack("flood", 120, 30, 10),
               Attack("wangiri", 150, 60, 1)]
    path = capture(tmp_path_factory.mktemp("attacks") / "attacks.pcap", attacks)
    return {(a.name, a.subject) for a in analyze_file(str(path)).alerts if a.status == "open"}


@pytest.mark.parametrize(("name", "attacker"), [
    ("scanner_user_agent", "198.18.0.66"),
    ("extension_enumeration", "198.18.0.66"),
    ("registration_bruteforce", "198.18.0.77"),
    ("invite_flood", "198.18.0.88"),
    ("short_call_burst", "198.18.0.99"),
])
def test_each_attack_is_detected_against_its_source(alerts, name, attacker):
    assert (name, attacker) in alerts


def test_normal_traffic_raises_no_attack_alert(tmp_path):
    path = capture(tmp_path / "clean.pcap", [])
    names = {a.name for a in analyze_file(str(path)).alerts}
    assert not names & ATTACK_ALERTS
