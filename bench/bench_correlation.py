"""Micro-benchmark: messages/s per core of the pure correlation engine (calls + registrations).

Each capture is parsed once with the capture code; then only the engine is timed (``time.process_time``,
so it is CPU time of this one process = one core), ``--repeat`` times, best and median reported. The
project's goal is >= 20,000 messages/s per core.

    .venv/bin/python bench/bench_correlation.py [--repeat 7] [--json] [--peers] [--gc-compare] [CAPTURE ...]

The garbage collector runs with the thresholds the ``sipscope`` commands set (setting ``gc_young_threshold``);
``--gc-compare`` also times the engine with Python's default thresholds, side by side.

``--peers`` also times the whole job (read the capture, parse SIP, group the messages into calls) side by side
with sngrep, the dialog viewer carriers use for the same question, run in batch mode
(``sngrep -I F -N -q -c -l LIMIT -O out.pcap``: reads the capture, builds its call dialogs and writes the calls
out; CPU of the sngrep process; LIMIT = ten times the capture's messages, because sngrep skips every dialog after
its limit, 20,000 by default): messages per CPU-second over the capture's SIP messages. Each of ``--repeat``
rounds runs ours in a fresh process (CPU of the job, Python's start-up and imports not counted), then sngrep;
the table gives each one's median and the median of the rounds' ratios (this machine's speed drifts by 20-30%
within minutes, so only turns taken side by side compare).
tshark's command line has no call correlation (its VoIP calls view is in the GUI only).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sipscope.settings import Settings  # noqa: E402
from streams.analyze import load_messages  # noqa: E402
from streams.engine import Correlator  # noqa: E402

PCAPS = ROOT.parent / "shared" / "testdata" / "pcaps"
DEFAULT = ["sipp-branch-load-1334-calls-403.pcapng", "b2bua-freeswitch-100-calls-ipv4-fragmented-invites.pcap"]
GOAL = 20_000


def run_engine(messages) -> int:
    corr = Correlator(Settings().correlation)
    feed = corr.feed
    n = 0
    for m in messages:
        n += len(feed(m))
    n += len(corr.flush_all())
    return n


def bench(path: Path, repeat: int) -> dict:
    settings = Settings()
    messages = load_messages(str(path), settings)
    outputs = run_engine(messages)  # warm-up (and the output count)
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.process_time()
        run_engine(messages)
        times.append(time.process_time() - t0)
    best, median = min(times), statistics.median(times)
    return {"capture": path.name, "messages": len(messages), "outputs": outputs, "repeat": repeat,
            "best_s": round(best, 6), "median_s": round(median, 6),
            "msgs_per_s_best": round(len(messages) / best) if best else None,
            "msgs_per_s_median": round(len(messages) / median) if median else None,
            "us_per_msg_median": round(median / len(messages) * 1e6, 2) if messages else None}


def job_cpu(path: str) -> float:
    """CPU seconds of one whole job, read + parse + correlate, in this process (imports not counted)."""
    import producers.cli  # noqa: F401 - the modules load_messages imports when called
    import producers.pipeline  # noqa: F401
    from sipscope.cli import tune_gc

    settings = Settings()
    tune_gc(settings.gc_young_threshold)
    tune_gc(settings.batch_gc_young_threshold)  # as `sipscope analyze` does
    gc.collect()
    t0 = time.process_time()
    run_engine(load_messages(path, settings))
    return time.process_time() - t0


def whole_job(path: Path, repeat: int) -> tuple[list[tuple[str, int, float]], float | None]:
    """Read + parse + correlate, ours and sngrep's batch mode, ``repeat`` rounds of one fresh process each,
    taking turns (so that both see the same moments of a noisy machine).

    Returns ``(rows, ratio)``: rows of (name, SIP messages, median CPU s), and the median over the rounds of
    sngrep's CPU over ours in the same round (None without sngrep)."""
    import shutil
    import tempfile

    from bench.common import run_child

    settings = Settings()
    n = len(load_messages(str(path), settings))
    sngrep = shutil.which("sngrep")
    # sngrep keeps at most -l dialogs (20,000 by default) and skips every later one; the limit also sizes
    # its hash tables. Give it room for every message of the capture, ten times over (the fastest of
    # the limits tried on the carrier mix), and check from its output that it kept every call.
    limit = max(20_000, 10 * n)
    ours: list[float] = []
    theirs: list[float] = []
    ours_cmd = [sys.executable, "-c", "import sys; from bench.bench_correlation import job_cpu; "
                f"print(job_cpu(sys.argv[1]))", str(path)]
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/calls.pcap"
        for _ in range(repeat):
            ours.append(float(subprocess.run(ours_cmd, capture_output=True, text=True, check=True,
                                             cwd=ROOT).stdout.split()[-1]))
            if sngrep:
                _out, c, _wall = run_child([sngrep, "-I", str(path), "-N", "-q", "-c", "-l", str(limit), "-O", out])
                theirs.append(c)
        kept = load_messages(out, settings) if sngrep else []
    rows = [("sipscope: read + parse + correlate (streams.analyze's path)", n, statistics.median(ours))]
    if not sngrep:
        return rows, None
    rows.append((f"sngrep -I F -N -q -c -l {limit} -O calls.pcap", n, statistics.median(theirs)))
    print(f"  sngrep kept {len({m.call_id for m in kept}):,} dialogs, {len(kept):,} of the {n:,} SIP messages "
          f"of {path.name}", file=sys.stderr)
    return rows, statistics.median(t / o for o, t in zip(ours, theirs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*", help=f"capture files (default: {', '.join(DEFAULT)} from {PCAPS})")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--peers", action="store_true", help="also read+parse+correlate beside sngrep")
    ap.add_argument("--gc-compare", action="store_true", help="also time the engine with Python's default GC")
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.captures] or [PCAPS / name for name in DEFAULT]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"bench_correlation: missing capture(s): {', '.join(missing)}", file=sys.stderr)
        return 2
    from sipscope.cli import tune_gc

    default_gc = gc.get_threshold()
    young = Settings().gc_young_threshold
    baseline = []
    if args.gc_compare:
        baseline = [bench(p, args.repeat) for p in paths]
    tune_gc(young)
    results = [bench(p, args.repeat) for p in paths]
    if baseline and not args.json:
        print(f"engine with Python's default GC thresholds {default_gc} vs the commands' {gc.get_threshold()}:")
        for b, r in zip(baseline, results):
            print(f"  {r['capture']}: median {b['msgs_per_s_median']:,} -> {r['msgs_per_s_median']:,} msg/s "
                  f"({r['msgs_per_s_median'] / b['msgs_per_s_median']:.2f}x)")
    if args.json:
        print(json.dumps({"goal_msgs_per_s": GOAL, "python": sys.version.split()[0], "results": results}, indent=2))
    else:
        print(f"correlation engine, CPU time of one process (goal >= {GOAL:,} msg/s per core), "
              f"python {sys.version.split()[0]}")
        for r in results:
            print(f"  {r['capture']}: {r['messages']} msgs -> {r['outputs']} records; "
                  f"median {r['msgs_per_s_median']:,} msg/s ({r['us_per_msg_median']} us/msg), "
                  f"best {r['msgs_per_s_best']:,} msg/s over {r['repeat']} runs")
    if args.peers:
        print("\n| capture | read + parse + correlate | SIP messages | CPU s (median) | msgs per CPU-second "
              "| sipscope's rate / this rate (median of the rounds) |")
        print("|---|---|---:|---:|---:|---:|")
        for p in paths:
            rows, ratio = whole_job(p, args.repeat)
            for name, n, cpu in rows:
                shown = "1" if name == rows[0][0] else f"{ratio:.2f}"
                print(f"| {p.name} | {name} | {n:,} | {cpu:.3f} | {n / cpu:,.0f} | {shown} |")
    return 0 if all((r["msgs_per_s_median"] or 0) >= GOAL for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
