"""Benchmark: messages/s of ``sipscope worker`` (Faust) against the real Kafka, and per core of the worker.

A capture is parsed once and replicated (Call-IDs suffixed ``~k``, times shifted) up to ``--messages``
records, pre-loaded into a fresh prefixed ``sip.messages`` topic; then one worker process is started
with a fresh app id and timed:

* ``startup``: process start -> its partitions loaded (Faust start, group join, table recovery);
* ``processing``: partitions loaded -> every message consumed (from the worker's progress log), with the
  worker's CPU seconds over the same span read from ``/proc/<pid>/stat`` -> messages/s per core;
* ``total``: process start -> the last final summary on ``sip.calls`` (includes the idle tick that
  closes the last calls, ``--idle``).

The number of distinct final summaries is checked against the offline Correlator on the same records.
``--profile`` runs the worker under cProfile and prints where its time goes.

    .venv/bin/python bench/bench_worker.py [--messages 100000] [--partitions 6] [--json] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec

from bench.common import delete_topics, machine
from sipscope import records, topics
from sipscope.records import CallSummary, SipMessage
from sipscope.settings import KafkaSettings, Settings
from streams.analyze import load_messages
from streams.engine import Correlator

PCAPS = ROOT.parent / "shared" / "testdata" / "pcaps"
DEFAULT = "sipp-branch-load-1334-calls-403.pcapng"
GOAL = 10_000
CLK = os.sysconf("SC_CLK_TCK")


def workload(path: Path, n: int) -> list[SipMessage]:
    """``n`` messages: the capture again and again, each copy with its own Call-IDs, later in time."""
    base = load_messages(str(path), Settings())
    span = base[-1].ts - base[0].ts + 1.0
    out: list[SipMessage] = []
    k = 0
    while len(out) < n:
        shift = k * span
        out += [msgspec.structs.replace(m, call_id=f"{m.call_id}~{k}", ts=m.ts + shift) for m in base]
        k += 1
    return out[:n]


def offline_finals(msgs: list[SipMessage]) -> tuple[int, float]:
    corr = Correlator(Settings().correlation)
    t0 = time.process_time()
    n = 0
    for m in msgs:
        n += sum(1 for r in corr.feed(m) if type(r) is CallSummary and r.final)
    n += sum(1 for r in corr.advance(1e12) if type(r) is CallSummary and r.final)
    return n, time.process_time() - t0


def preload(bootstrap: str, topic: str, msgs: list[SipMessage]) -> float:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                  "compression.type": "zstd", "queue.buffering.max.messages": 1_000_000, "log_level": 0})
    t0 = time.perf_counter()
    for m in msgs:
        while True:
            try:
                p.produce(topic, records.encode(m), m.call_id.encode())
                break
            except BufferError:
                p.poll(0.1)
    p.flush(120)
    return time.perf_counter() - t0


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def log_events(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def run(args: argparse.Namespace) -> dict:
    from confluent_kafka import Consumer

    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    settings = Settings(kafka=KafkaSettings(topic_prefix=prefix, partitions=args.partitions))
    bootstrap = settings.kafka.bootstrap
    msgs = workload(Path(args.capture), args.messages)
    expected, engine_cpu = offline_finals(msgs)
    topics.ensure(bootstrap, [topics.name(t, settings) for t in topics.ALL], args.partitions)
    preload_s = preload(bootstrap, topics.name(topics.MESSAGES, settings), msgs)

    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    log_path = tmp / "worker.log"
    env = dict(os.environ, SIPSCOPE_KAFKA__TOPIC_PREFIX=prefix, SIPSCOPE_KAFKA__PARTITIONS=str(args.partitions),
               SIPSCOPE_WORKER__APP_ID=f"{prefix}app", SIPSCOPE_WORKER__IDLE_S=str(args.idle),
               SIPSCOPE_WORKER__PROGRESS_S="0.25", SIPSCOPE_WORKER__TICK_S="0.25",
               SIPSCOPE_WORKER__BATCH_MAX=str(args.batch), SIPSCOPE_LOG_JSON="true")
    cmd = [sys.executable]
    if args.profile:
        cmd += ["-m", "cProfile", "-o", str(tmp / "worker.prof")]
    cmd += ["-m", "sipscope.cli", "worker"]
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}reader", "auto.offset.reset": "earliest",
                       "log_level": 0})
    reader.subscribe([topics.name(topics.CALLS, settings)])
    finals: set[str] = set()
    raw_finals = 0
    cpu_at: dict[str, float] = {}
    t_at: dict[str, float] = {}
    with open(log_path, "w") as err:
        t_start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + args.timeout
            last_final = None
            while time.monotonic() < deadline and (len(finals) < expected or "done" not in t_at):
                for m in reader.consume(5000, 0.05):
                    if m.error() is None:
                        rec = records.decode(m.value(), CallSummary)
                        if rec.final:
                            raw_finals += 1
                            finals.add(rec.id)
                            last_final = time.perf_counter()
                if "loaded" not in t_at or "done" not in t_at:
                    events = log_events(log_path)
                    if "loaded" not in t_at and any(e.get("event") == "partitions_loaded" for e in events):
                        t_at["loaded"], cpu_at["loaded"] = time.perf_counter(), proc_cpu(proc.pid)
                    if "done" not in t_at and any(e.get("event") == "progress" and e.get("messages", 0) >= len(msgs)
                                                  for e in events):
                        t_at["done"], cpu_at["done"] = time.perf_counter(), proc_cpu(proc.pid)
                assert proc.poll() is None, log_path.read_text()[-3000:]
        finally:
            proc.terminate()
            proc.wait(60)
            reader.close()
    if "done" not in t_at or "loaded" not in t_at:
        raise SystemExit(f"the worker did not finish in {args.timeout} s; log: {log_path}")
    # the progress line is written up to progress_s after the last message: take the message-count
    # crossing from the log's own timestamps for the wall span, the /proc sample for CPU
    proc_wall = t_at["done"] - t_at["loaded"]
    proc_cpu_s = cpu_at["done"] - cpu_at["loaded"]
    result = {
        "machine": machine(), "capture": Path(args.capture).name, "messages": len(msgs),
        "partitions": args.partitions, "batch_max": args.batch, "expected_calls": expected,
        "distinct_final_summaries": len(finals), "final_summaries_on_topic": raw_finals,
        "preload_s": round(preload_s, 2),
        "startup_s": round(t_at["loaded"] - t_start, 2),
        "processing_wall_s": round(proc_wall, 2), "processing_cpu_s": round(proc_cpu_s, 2),
        "msgs_per_s_wall": round(len(msgs) / proc_wall), "msgs_per_cpu_s": round(len(msgs) / proc_cpu_s),
        "total_to_last_summary_s": round((last_final or t_at["done"]) - t_start, 2),
        "engine_only_msgs_per_cpu_s": round(len(msgs) / engine_cpu),
        "goal_msgs_per_cpu_s": GOAL,
    }
    if args.profile:
        result["profile"] = str(tmp / "worker.prof")
    if not args.keep:
        delete_topics(bootstrap, prefix)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--batch", type=int, default=2000, help="worker.batch_max")
    ap.add_argument("--idle", type=float, default=1.0, help="worker.idle_s")
    ap.add_argument("--capture", default=str(PCAPS / DEFAULT))
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", action="store_true", help="run the worker under cProfile and print the top")
    ap.add_argument("--keep", action="store_true", help="keep the bench topics")
    args = ap.parse_args()
    r = run(args)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(r["machine"])
        print(f"{r['capture']} x{r['messages']} messages, {r['partitions']} partitions, batch {r['batch_max']}")
        print(f"  startup {r['startup_s']} s; processing {r['processing_wall_s']} s wall, {r['processing_cpu_s']} "
              f"CPU s -> {r['msgs_per_s_wall']} msgs/s, {r['msgs_per_cpu_s']} msgs per CPU second "
              f"(goal {GOAL}); engine alone {r['engine_only_msgs_per_cpu_s']}")
        print(f"  {r['distinct_final_summaries']}/{r['expected_calls']} calls, {r['final_summaries_on_topic']} final "
              f"summaries on the topic; last one {r['total_to_last_summary_s']} s after start")
    if args.profile:
        pstats.Stats(r["profile"]).sort_stats("cumulative").print_stats(35)
        pstats.Stats(r["profile"]).sort_stats("tottime").print_stats(30)
    return 0 if r["distinct_final_summaries"] == r["expected_calls"] else 1


if __name__ == "__main__":
    sys.exit(main())
