"""Load generator output rate: SIP messages per CPU-second of ``sipscope loadgen`` (run on demand).

    .venv/bin/python bench/bench_loadgen.py [--cps 200] [--duration 60] [--rounds 3]

One profile (default traffic mix, registrations at a tenth of the call rate, all four attacks injected) is
generated, unpaced, into each output; best of ``--rounds``, CPU time of this process (``per core``):

* ``generate``  the messages only (sessions, timelines, rendering), no output;
* ``pcap``      + Ethernet/IPv4/UDP frames with both checksums, written to a pcap file;
* ``hep``       + HEP3 encoding (``producers.hep.encode_hep3``) and a UDP send to a local socket;
* ``sip-udp``   + a UDP send of the SIP message itself.

The e2e benchmark needs at least 5,000 messages/s from the generator (real-time paced, one core).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import machine, timed
from producers.loadgen import (
    Attack,
    Generator,
    HepOutput,
    PcapOutput,
    Profile,
    SipOutput,
    pump,
)


def profile(cps: float, duration: float) -> Profile:
    return Profile(seed=1, cps=cps, duration=duration, reg_rate=cps / 10, attacks=[
        Attack("scan", 5, 10, 50), Attack("bruteforce", 10, 10, 10), Attack("flood", 20, 10, 50),
        Attack("wangiri", 30, 20, 5)])


class Null:
    messages = 0
    bytes = 0

    def send(self, ts, wire) -> None:
        self.messages += 1

    def close(self) -> None:
        pass


def run_once(kind: str, prof: Profile, port: int, tmp: Path) -> tuple[int, float, float]:
    f = None
    if kind == "generate":
        out = Null()
    elif kind == "pcap":
        f = (tmp / "bench.pcap").open("wb")
        out = PcapOutput(f)
    elif kind == "hep":
        out = HepOutput(f"127.0.0.1:{port}")
    else:
        out = SipOutput(f"127.0.0.1:{port}")
    with timed() as t:
        pump(Generator(prof).messages(), out)
        out.close()
        if f is not None:
            f.close()
    return out.messages, t.cpu, t.wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cps", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    prof = profile(args.cps, args.duration)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives nothing: the kernel drops what overflows
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    print(f"machine: {machine()}")
    print(f"profile: {args.cps:g} CPS for {args.duration:g} s, registrations {args.cps / 10:g}/s, scan + bruteforce "
          f"+ flood + wangiri; seed 1; started {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'output':<10} {'messages':>9} {'msgs/s per core':>16} {'msgs/s wall':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("generate", "pcap", "hep", "sip-udp"):
            best = None
            for _ in range(args.rounds):
                n, cpu, wall = run_once(kind, prof, port, Path(tmp))
                if best is None or cpu < best[1]:
                    best = (n, cpu, wall)
            n, cpu, wall = best
            print(f"{kind:<10} {n:>9} {n / cpu:>16,.0f} {n / wall:>12,.0f}")
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
