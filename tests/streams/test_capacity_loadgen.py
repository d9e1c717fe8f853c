"""``sipscope capacity`` on loadgen captures with known parameters.

The designed day: calls only from 09:00 to 12:00 UTC, hourly weights 0.5 / 1 / 0.5, 2 call attempts/s in
the busy hour 10:00-11:00, 70 % answered (lognormal hold, mean 60 s) and 30 % busy. Expected offered
traffic of the busy hour, analytically (lambda = 2/s):

* conversation only (``--holding answered``): A = lambda * 0.7 * 60 s = 84 Erl;
* seizure (INVITE to BYE / final, the default): A = lambda * (0.7 * (PDD 1.5 + ring 8 + rtt/2 0.01 + hold 60)
  + 0.3 * PDD 1.5) = 98.21 Erl.

Both must come back within 5 %; against the generator's own plan (the holding times of the calls actually
generated) the measurement must be exact to 0.5 %.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from producers.loadgen import Dist, Generator, PcapOutput, Profile, pump
from producers.loadgen.profile import trunk_map
from sipscope.settings import Settings
from streams.capacity import ALL, circuits_for, plan_capacity
from streams.capacity_cli import main as capacity_main
from streams.capacity_sources import calls_from_pcap, renamed

LAMBDA = 2.0
BH_START = 1736121600.0 + 10 * 3600  # 2025-01-06T10:00:00Z
CURVE = [0.0] * 24
CURVE[9:12] = [0.5, 1.0, 0.5]
PROFILE = Profile(seed=17, cps=LAMBDA, duration=86400.0, curve=CURVE, mix={"answered": 0.7, "busy": 0.3},
                  hold=Dist("lognormal", 60.0, 0.5, 4 * 3600.0))
SEIZURE_ERL = LAMBDA * (0.7 * (PROFILE.pdd.mean + PROFILE.ring.mean + PROFILE.rtt / 2 + 60.0) + 0.3 * PROFILE.pdd.mean)
ANSWERED_ERL = LAMBDA * 0.7 * 60.0


def generate(path: Path, prof: Profile) -> list[dict]:
    plan: list[dict] = []
    with path.open("wb") as f:
        out = PcapOutput(f)
        pump(Generator(prof, on_session=lambda s: plan.append(s.plan())).messages(), out)
        out.close()
    return plan


def plan_erlangs(plan: list[dict], t0: float, mode: str, trunk: str | None = None) -> float:
    """Holding time inside [t0, t0 + 1 h) of the generated calls, from the ground truth."""
    total = 0.0
    for p in plan:
        if trunk is not None and p["trunk"] != trunk:
            continue
        start = p["answer"] if mode == "answered" else p["start"]
        if start is None:
            continue
        total += max(0.0, min(p["end"], t0 + 3600) - max(start, t0))
    return total / 3600


def plan_peak(plan: list[dict]) -> int:
    events = sorted([(p["start"], 1) for p in plan] + [(p["end"], -1) for p in plan])
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("capacity") / "day.pcap"
    plan = generate(path, PROFILE)
    calls = list(renamed(calls_from_pcap(str(path), Settings()), trunk_map(PROFILE)))
    return path, plan, calls


@pytest.mark.parametrize(("mode", "analytic"), [("seizure", SEIZURE_ERL), ("answered", ANSWERED_ERL)])
def test_recovers_the_designed_busy_hour_and_erlangs(day, mode, analytic):
    _path, plan, calls = day
    rows = {r.key: r for r in plan_capacity(calls, holding_mode=mode)}
    total = rows[ALL]
    assert total.busy_hour.start == BH_START
    assert total.erlangs == pytest.approx(analytic, rel=0.05)
    assert total.erlangs == pytest.approx(plan_erlangs(plan, BH_START, mode), rel=0.005)
    assert total.erlangs_calls == pytest.approx(analytic, rel=0.05)
    assert total.circuits == circuits_for(total.erlangs, 0.01)[0]
    for name in ("carrier-a", "carrier-b", "mobile-c"):
        row = rows[name]
        assert row.busy_hour.start == BH_START, name
        assert row.erlangs == pytest.approx(plan_erlangs(plan, BH_START, mode, name), rel=0.005), name
    assert sum(rows[n].erlangs for n in ("carrier-a", "carrier-b", "mobile-c")) == pytest.approx(total.erlangs)


def test_peak_concurrency_and_attempts(day):
    _path, plan, calls = day
    total = plan_capacity(calls)[0]
    assert total.peak_concurrent == plan_peak(plan)
    assert BH_START <= total.peak_ts < BH_START + 3600 + 600
    assert total.calls == len(plan)
    assert total.bh_calls == sum(1 for p in plan if BH_START <= p["start"] < BH_START + 3600)
    assert total.bh_calls == pytest.approx(LAMBDA * 3600, rel=0.05)


def test_sliding_minutes_find_the_same_hour(day):
    _path, _plan, calls = day
    total = plan_capacity(calls, step=1)[0]
    # with one-minute steps the window may slide by the few minutes a 60 s hold shifts the traffic
    assert abs(total.busy_hour.start - BH_START) <= 5 * 60
    assert total.erlangs >= plan_capacity(calls, step=15)[0].erlangs


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", data[16:24])


def test_command_table_json_and_charts(tmp_path, capsys):
    prof = Profile(seed=3, cps=0.5, duration=3600, start=1736121600.0 + 9 * 3600, mix={"answered": 1.0},
                   hold=Dist("exp", 90.0))
    pcap = tmp_path / "one-hour.pcap"
    generate(pcap, prof)
    (tmp_path / "trunks.json").write_text(json.dumps(trunk_map(prof)))
    charts = tmp_path / "charts"
    assert capacity_main(["--pcap", str(pcap), "--trunks", str(tmp_path / "trunks.json"), "--charts", str(charts)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["trunk", "calls", "busy"]
    assert {line.split()[0] for line in table.splitlines()[1:5]} == {"all", "carrier-a", "carrier-b", "mobile-c"}
    files = sorted(p.name for p in charts.iterdir())
    assert files == sorted(f"{kind}-{key}.png" for kind in ("busy-hour", "concurrent")
                           for key in ("all", "carrier-a", "carrier-b", "mobile-c"))
    for name in files:
        w, h = _png_size(charts / name)
        assert (w, h) == (1100, 400)
    from matplotlib.image import imread

    assert imread(charts / "busy-hour-all.png").shape[:2] == (400, 1100)

    assert capacity_main(["--pcap", str(pcap), "--json", "--blocking", "0.001", "--by", "src",
                          "--holding", "answered"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["trunk"] == ALL and rows[0]["erlangs"] == pytest.approx(0.5 * 90, rel=0.15)
    assert rows[0]["circuits"] == circuits_for(rows[0]["erlangs"], 0.001)[0]
    assert {r["trunk"] for r in rows[1:]} <= {"10.10.0.10", "203.0.113.1", "203.0.113.2", "203.0.113.3",
                                              "203.0.113.4", "198.51.100.1", "198.51.100.2", "192.0.2.1", "192.0.2.2"}


def test_command_errors(tmp_path, capsys):
    (tmp_path / "x.pcap").write_bytes(b"not a capture")
    assert capacity_main(["--pcap", str(tmp_path / "x.pcap")]) == 1
    assert "error" in capsys.readouterr().err
    assert capacity_main(["--pcap", str(tmp_path / "missing.pcap")]) == 1
