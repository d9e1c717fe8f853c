"""`make bench`: run the benchmarks one after the other (never in parallel: they share 2 cores) and write
``docs/benchmarks.md`` with the machine, the exact commands and what each printed.

Usage: python -m bench.run [--only NAME ...] [--out docs/benchmarks.md]
Benchmarks that need the real stack expect it running (``sipscope stack up``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, machine

BENCHES: list[tuple[str, list[str], str]] = [
    ("capture", ["-m", "bench.bench_capture", "--repeat", "5", "--pyshark-limit", "2000"],
     "file fast path vs tshark -T fields vs pyshark on the same capture, and capture -> Kafka"),
    ("parser", ["bench/bench_parser.py"], "SIP parser alone (parse_sip, + to_record, + JSON)"),
    ("pcap", ["bench/bench_pcap.py"], "pcap reader + reassembly alone, ours vs a dpkt-based source"),
    ("correlation", ["bench/bench_correlation.py"], "pure call/registration correlation engine"),
    ("anomaly", ["bench/bench_anomaly.py"], "KPI rollup + anomaly engine"),
    ("worker", ["bench/bench_worker.py"], "Faust worker on the real Kafka"),
    ("analytics", ["-m", "bench.bench_analytics", "--cps", "1000", "--duration", "60", "--tail", "20"],
     "`sipscope worker --role analytics` on the real Kafka"),
    ("indexer", ["bench/bench_indexer.py", "--messages", "200000"], "indexing rate and number-search latency"),
    ("es-layout", ["-m", "bench.bench_es_layout", "--docs", "60000", "--rounds", "4"],
     "Elasticsearch CPU per message document, by index layout"),
    ("loadgen", ["bench/bench_loadgen.py"], "load generator output rate"),
    ("e2e", ["-m", "bench.bench_e2e", "--cps", "700", "--duration", "60", "--tail", "20"],
     "capture -> Kafka -> worker -> indexer -> searchable, 700 CPS loadgen mix, with parser peers"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="names to run: " + ", ".join(b[0] for b in BENCHES))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)
    sections = []
    for name, cmd, what in BENCHES:
        if args.only and name not in args.only:
            continue
        script = ROOT / cmd[0]
        if cmd[0] != "-m" and not script.exists():
            continue
        full = [sys.executable, *cmd]
        shown = "python " + " ".join(cmd)
        print(f"bench: {name}: {shown}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(full, cwd=ROOT, capture_output=True, text=True)
        took = time.monotonic() - t0
        out = proc.stdout.strip() or proc.stderr.strip()[-2000:]
        status = "" if proc.returncode == 0 else f" (exit {proc.returncode})"
        sections.append(f"## {name}: {what}\n\nCommand: `{shown}`{status}, {took:.0f} s\n\n```\n{out}\n```\n")
    header = (f"# Benchmarks\n\nWritten by `python -m bench.run` (`make bench`) on {time.strftime('%Y-%m-%d %H:%M %Z')}.\n\n"
              f"Machine: {machine()}.\n\nRates are per CPU-second of the measured process (\"per core\") unless a line says\n"
              "wall clock. Peers are measured in the same run on the same input; compare ratios, not absolute\n"
              "numbers (the machine is shared).\n\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.only and args.out.exists():
        # keep the sections of benchmarks not re-run
        old = args.out.read_text().split("\n## ")[1:]
        keep = [f"## {s}" for s in old if s.split(":", 1)[0] not in args.only]
        sections = keep + sections
    args.out.write_text(header + "\n".join(sections))
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
