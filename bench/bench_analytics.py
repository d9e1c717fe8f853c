"""Benchmark: records/s of ``sipscope worker --role analytics`` (KPIs + anomaly detection) on the real Kafka.

The analytics role is one process for the whole network (its detectors key on IPs, trunks and numbers, so
one instance must see every record; docs/scaling.md). This measures how far that one process goes:

1. ``sipscope loadgen`` writes a carrier mix (default: the e2e traffic, 700 CPS for 60 s, seed 1);
2. its messages, and the call summaries and registrations the offline Correlator makes of them, are
   pre-loaded into fresh prefixed ``sip.messages``, ``sip.calls`` and ``sip.registrations`` topics, as the
   capture agents and the correlating workers would have written them;
3. one ``sipscope worker --role analytics`` starts with a fresh app id and is timed from its engine being
   loaded (``analytics_loaded``) until its progress log has counted every record: wall seconds and its CPU
   seconds over the same span (``/proc/<pid>/stat``) -> records per CPU-second;
4. the same records through the analytics engines alone (``streams.worker.Analytics``, no Kafka, no Faust),
   for the Faust and Kafka overhead.

Correctness of the role (every record applied once, KPI rows and alerts equal to the offline engines, through
a SIGKILL) is the job of ``tests/streams/test_worker_stack.py``; this only times it.

    .venv/bin/python -m bench.bench_analytics [--cps 700] [--duration 60] [--tail 20] [--partitions 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_worker import log_events, preload, proc_cpu  # noqa: E402
from bench.common import delete_topics, machine  # noqa: E402
from sipscope import topics  # noqa: E402
from sipscope.records import CallSummary, Registration, SipMessage  # noqa: E402
from sipscope.settings import KafkaSettings, Settings  # noqa: E402
from streams.analyze import load_messages  # noqa: E402
from streams.engine import Correlator  # noqa: E402


def workload(args: argparse.Namespace, tmp: Path) -> tuple[list[SipMessage], list[CallSummary], list[Registration],
                                                          list[SipMessage | CallSummary | Registration]]:
    """The loadgen capture's messages, the summaries and registrations the offline Correlator makes of them,
    and all of them in the order a stream gives them (each message, then what it closed)."""
    pcap = tmp / "load.pcap"
    subprocess.run([sys.executable, "-m", "sipscope.cli", "loadgen", "--out", str(pcap), "--cps", str(args.cps),
                    "--duration", str(args.duration), "--tail", str(args.tail), "--seed", str(args.seed),
                    "--quiet"], check=True, cwd=ROOT)
    msgs = load_messages(str(pcap), Settings())
    pcap.unlink()
    corr = Correlator(Settings().correlation)
    calls: list[CallSummary] = []
    regs: list[Registration] = []
    seq: list[SipMessage | CallSummary | Registration] = []
    for m in msgs:
        seq.append(m)
        for out in corr.feed(m):
            seq.append(out)
            (calls if type(out) is CallSummary else regs).append(out)
    for out in corr.flush_all():
        seq.append(out)
        (calls if type(out) is CallSummary else regs).append(out)
    return msgs, calls, regs, seq


def engines_alone(settings: Settings, seq: list) -> float:
    """CPU seconds of the analytics engines (``streams.worker.Analytics``: KPI rollup + anomaly detectors) fed
    ``seq`` in one process, advanced every 1,000 records as the worker advances once per batch."""
    from streams.worker import Analytics

    eng = Analytics(settings)
    t0 = time.process_time()
    for n, rec in enumerate(seq):
        eng.feed("x:0", n, rec)
        if n % 1000 == 999:
            eng.advance()
    eng.advance()
    return time.process_time() - t0


def run(args: argparse.Namespace) -> dict:

    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    settings = Settings(kafka=KafkaSettings(topic_prefix=prefix, partitions=args.partitions))
    bootstrap = settings.kafka.bootstrap
    tmp = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    msgs, calls, regs, seq = workload(args, tmp)
    total = len(seq)
    engine_cpu = engines_alone(settings, seq)
    topics.ensure(bootstrap, [topics.name(t, settings) for t in topics.ALL], args.partitions)
    preload_s = sum(preload(bootstrap, topics.name(t, settings), recs)
                    for t, recs in ((topics.MESSAGES, msgs), (topics.CALLS, calls), (topics.REGISTRATIONS, regs)))

    log_path = tmp / "analytics.log"
    env = dict(os.environ, SIPSCOPE_KAFKA__TOPIC_PREFIX=prefix, SIPSCOPE_KAFKA__PARTITIONS=str(args.partitions),
               SIPSCOPE_WORKER__APP_ID=f"{prefix}app", SIPSCOPE_WORKER__PROGRESS_S="0.25",
               SIPSCOPE_WORKER__TICK_S="0.25", SIPSCOPE_LOG_JSON="true")
    cmd = [sys.executable, "-m", "sipscope.cli", "worker", "--role", "analytics"]
    t_at: dict[str, float] = {}
    cpu_at: dict[str, float] = {}
    last: dict = {}
    with open(log_path, "w") as err:
        t_start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and "done" not in t_at:
                time.sleep(0.1)
                events = log_events(log_path)
                if "loaded" not in t_at and any(e.get("event") == "analytics_loaded" for e in events):
                    t_at["loaded"], cpu_at["loaded"] = time.perf_counter(), proc_cpu(proc.pid)
                progress = [e for e in events if e.get("event") == "analytics_progress"]
                if progress and progress[-1].get("records", 0) >= total:
                    t_at["done"], cpu_at["done"] = time.perf_counter(), proc_cpu(proc.pid)
                    last = progress[-1]
                assert proc.poll() is None, log_path.read_text()[-3000:]
        finally:
            proc.terminate()
            proc.wait(60)
    if "done" not in t_at or "loaded" not in t_at:
        raise SystemExit(f"the analytics worker did not finish in {args.timeout} s; log: {log_path}")
    wall = t_at["done"] - t_at["loaded"]
    cpu = cpu_at["done"] - cpu_at["loaded"]
    result = {
        "machine": machine(),
        "traffic": f"sipscope loadgen --cps {args.cps:g} --duration {args.duration:g} --tail {args.tail:g} "
                   f"--seed {args.seed}",
        "partitions": args.partitions, "messages": len(msgs), "call_summaries": len(calls),
        "registrations": len(regs), "records": total, "preload_s": round(preload_s, 2),
        "startup_s": round(t_at["loaded"] - t_start, 2),
        "processing_wall_s": round(wall, 2), "processing_cpu_s": round(cpu, 2),
        "records_per_s_wall": round(total / wall), "records_per_cpu_s": round(total / cpu),
        "engines_alone_records_per_cpu_s": round(total / engine_cpu),
        "stats_rows": last.get("stats"), "alerts": last.get("alerts"),
        "rejected": last.get("rejected"), "offset_gaps": last.get("offset_gaps"),
    }
    if not args.keep:
        delete_topics(bootstrap, prefix)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cps", type=float, default=700)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--tail", type=float, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the bench topics")
    args = ap.parse_args()
    from sipscope.cli import tune_gc

    tune_gc(Settings().gc_young_threshold)  # the engines alone run as the sipscope commands run them
    r = run(args)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"# analytics benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"machine: {r['machine']}")
    print(f"traffic: {r['traffic']}: {r['messages']:,} messages + {r['call_summaries']:,} call summaries + "
          f"{r['registrations']:,} registrations = {r['records']:,} records, {r['partitions']} partitions each\n")
    print("| sipscope worker --role analytics | value |")
    print("|---|---:|")
    print(f"| startup (process start .. engine loaded) | {r['startup_s']} s |")
    print(f"| processing: wall / CPU | {r['processing_wall_s']} s / {r['processing_cpu_s']} s |")
    print(f"| records per second, wall | {r['records_per_s_wall']:,} |")
    print(f"| records per CPU-second | **{r['records_per_cpu_s']:,}** |")
    print(f"| the engines alone, records per CPU-second | {r['engines_alone_records_per_cpu_s']:,} |")
    print(f"| KPI rows / alerts published by then | {r['stats_rows']:,} / {r['alerts']:,} |")
    print(f"| rejected / offset gaps | {r['rejected']} / {r['offset_gaps']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
