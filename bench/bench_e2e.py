"""End-to-end benchmark on the real stack: capture -> Kafka -> worker -> indexer -> searchable in Elasticsearch.

1. ``sipscope loadgen`` writes a carrier mix (``--cps``, ``--duration``, answered calls hang up within ``--tail``);
2. one ``sipscope worker`` and one ``sipscope index`` start on a private topic/index prefix (6 partitions);
3. ``sipscope capture --pcap F --retime --speed realtime`` (or ``--speed max``) replays it into Kafka;
4. measured:
   * sustained rate: SIP messages published / seconds from the first publish to the last message searchable;
   * capture-to-searchable latency: a sampler reads sip.messages as it is written and takes every
     ``--sample-every``-th record; its Kafka CreateTime (set by the capture process when it hands the parsed
     message to the producer) is compared with the first time an ``ids`` search of Elasticsearch finds it
     (polled every 0.2 s; the index refresh interval is part of what is measured);
   * CPU seconds (utime+stime from /proc/<pid>/stat, deltas over the run) and peak RSS of each stage:
     capture, worker, indexer, and the Kafka and Elasticsearch JVMs (pid files under /var/lib/sipscope);
5. peers on the same pcap, run afterwards one at a time (functions of bench.bench_capture): our parse fast
   path, ``tshark -T fields``, pyshark (first ``--pyshark-limit`` packets), and any ``--peer-cmd 'CMD {pcap}'``
   (CPU of the command and its children; rate = the pcap's SIP messages / CPU seconds); then the whole offline
   job, read + parse + correlate (``streams.analyze``'s path), beside sngrep's batch mode (as in
   ``bench/bench_correlation.py --peers``, three rounds taking turns).

Usage: python -m bench.bench_e2e [--cps 700] [--duration 60] [--tail 20] [--speed realtime|max]
                                  [--peer-cmd 'CMD {pcap}' ...] [--keep]
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.common import ROOT, Measure, machine, run_child

PARTITIONS = 6
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_s(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK  # utime, stime
    except (OSError, IndexError):
        return float("nan")


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError):
        return float("nan")


class Watch(threading.Thread):
    """Samples CPU and RSS of named pids every 0.5 s (last CPU before exit, peak RSS)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pids: dict[str, int] = {}
        self.cpu0: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.rss: dict[str, float] = {}
        self.stop = threading.Event()

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.cpu0[name] = cpu_s(pid)
        self.sample()

    def sample(self) -> None:
        for name, pid in list(self.pids.items()):
            c, r = cpu_s(pid), rss_mb(pid)
            if not math.isnan(c):
                self.cpu[name] = c
            if not math.isnan(r):
                self.rss[name] = max(self.rss.get(name, 0.0), r)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.sample()

    def used(self, name: str) -> float:
        return self.cpu.get(name, 0.0) - self.cpu0.get(name, 0.0)


class Sampler(threading.Thread):
    """Reads sip.messages as it is written; every n-th record's (id, CreateTime) is polled in ES until found."""

    def __init__(self, bootstrap: str, topic: str, es_url: str, index: str, every: int) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        # fetches wait for 64 KiB or 100 ms, as the pipeline's consumers do: the sampler only has to learn an id
        # before its ES poll, and one fetch per producer batch would load the broker measured beside it
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-sampler-{uuid.uuid4().hex[:8]}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 0,
                           "fetch.min.bytes": 65536, "fetch.wait.max.ms": 100})
        self.c.subscribe([topic])
        self.es_url, self.index, self.every = es_url, index, every
        self.pending: dict[str, float] = {}
        self.lat: list[float] = []
        self.lat_at: list[tuple[float, float]] = []
        """(publish time, latency) of each sample: the latency of the busiest seconds can be told apart."""
        self.per_second: dict[int, int] = {}
        """Records published in each wall-clock second (Kafka CreateTime)."""
        self.seen = 0
        self.first_pub: float | None = None
        self.last_pub: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        import msgspec
        from elasticsearch import Elasticsearch

        es = Elasticsearch(self.es_url)
        last_poll = 0.0
        while not (self.stop.is_set() and not self.pending):
            for m in self.c.consume(2000, 0.05):
                if m.error() is not None:
                    continue
                self.seen += 1
                ts = m.timestamp()[1] / 1000.0
                self.first_pub = ts if self.first_pub is None else min(self.first_pub, ts)
                self.last_pub = ts if self.last_pub is None else max(self.last_pub, ts)
                self.per_second[int(ts)] = self.per_second.get(int(ts), 0) + 1
                if self.seen % self.every == 0:
                    self.pending[msgspec.json.decode(m.value())["id"]] = ts
            now = time.time()
            if self.pending and now - last_poll >= 0.2:
                last_poll = now
                ids = list(self.pending)[:500]
                try:
                    r = es.options(ignore_status=404).search(index=self.index, size=len(ids), source=False,
                                                             query={"ids": {"values": ids}})
                    found = time.time()
                    for h in r.get("hits", {}).get("hits", []):
                        pub = self.pending.pop(h["_id"], None)
                        if pub is not None:
                            self.lat.append(found - pub)
                            self.lat_at.append((pub, found - pub))
                except Exception:  # noqa: BLE001, S110 - the index may not exist yet; next poll retries
                    pass
        self.c.close()


BUSY_S = 20
"""Length of the busiest window reported beside the whole run (a loadgen replay ramps up and down)."""


def busiest(per_second: dict[int, int], window: int) -> tuple[int, float] | None:
    """(start second, records/s) of the ``window`` consecutive seconds with the most records published."""
    if not per_second:
        return None
    lo, hi = min(per_second), max(per_second)
    best = max(range(lo, max(lo, hi - window + 1) + 1),
               key=lambda t: sum(per_second.get(t + i, 0) for i in range(window)))
    return best, sum(per_second.get(best + i, 0) for i in range(window)) / window


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def jvm_pid(name: str) -> int | None:
    try:
        return int(Path(f"/var/lib/sipscope/{name}/{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def es_count(es, index: str, refresh: bool = False) -> int:
    """Documents a search sees now. ``refresh`` forces a refresh first: only for the final tally, since forced
    refreshes while indexing (every 0.2 s of the drain) would make tiny segments, cost Elasticsearch CPU
    and make documents searchable sooner than the index's own refresh interval does."""
    poll = es.options(ignore_status=(404, 503))  # no index yet / its shard not started yet
    if refresh:
        poll.indices.refresh(index=index)
    return poll.count(index=index).get("count", 0)


def cleanup(bootstrap: str, es, prefix: str) -> None:
    """Delete the run's topics (its own and the worker's changelogs), indices and templates."""
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if names:
            for f in admin.delete_topics(names, operation_timeout=10).values():
                f.result()
        es.options(ignore_status=404).indices.delete(index=f"{prefix}*", expand_wildcards="all")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}*")
    except Exception as exc:  # noqa: BLE001 - a failed cleanup must not hide the figures
        print(f"bench: cleanup of {prefix}* failed: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cps", type=float, default=700)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--tail", type=float, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed", choices=["realtime", "max"], default="realtime")
    ap.add_argument("--sample-every", type=int, default=100)
    ap.add_argument("--pyshark-limit", type=int, default=2000)
    ap.add_argument("--peer-cmd", action="append", default=[], help="external parser/collector command, {pcap} = the file")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--drain-timeout", type=float, default=300)
    ap.add_argument("--keep", action="store_true", help="keep the topics, indices and pcap")
    args = ap.parse_args(argv)

    from confluent_kafka import Consumer, TopicPartition
    from elasticsearch import Elasticsearch

    from sipscope import topics
    from sipscope.settings import KafkaSettings, get_settings

    base = get_settings()
    st = base.stack
    bootstrap, es_url = f"{st.kafka_host}:{st.kafka_port}", f"http://{st.es_host}:{st.es_port}"
    prefix = f"bench-e2e-{uuid.uuid4().hex[:6]}-"
    s = base.model_copy(update={"kafka": KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix, partitions=PARTITIONS)})
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    pcap = tmp / "load.pcap"
    py = [sys.executable, "-m", "sipscope.cli"]
    gen = [*py, "loadgen", "--out", str(pcap), "--seed", str(args.seed), "--cps", str(args.cps),
           "--duration", str(args.duration), "--tail", str(args.tail), "--quiet"]
    subprocess.run(gen, cwd=ROOT, check=True, capture_output=True)
    shown_gen = f"sipscope loadgen --out load.pcap --seed {args.seed} --cps {args.cps:g} --duration {args.duration:g} --tail {args.tail:g}"

    msgs_topic = topics.name(topics.MESSAGES, s)
    topics.ensure(bootstrap, [topics.name(t, s) for t in topics.ALL], PARTITIONS)
    env = dict(os.environ, SIPSCOPE_KAFKA__BOOTSTRAP=bootstrap, SIPSCOPE_KAFKA__TOPIC_PREFIX=prefix,
               SIPSCOPE_KAFKA__PARTITIONS=str(PARTITIONS), SIPSCOPE_ELASTICSEARCH__URL=es_url,
               SIPSCOPE_ELASTICSEARCH__INDEX_PREFIX=prefix, SIPSCOPE_LOG_JSON="true", SIPSCOPE_METRICS_PORT="0",
               SIPSCOPE_WORKER__APP_ID=f"{prefix}app", SIPSCOPE_INDEXER__GROUP_ID=f"{prefix}indexer",
               SIPSCOPE_INDEXER__SWEEP_INTERVAL="0", SIPSCOPE_CAPTURE__SPOOL_DIR=str(tmp / "spool"))
    logs = {n: open(tmp / f"{n}.log", "w") for n in ("worker", "indexer", "capture")}  # noqa: SIM115
    procs: dict[str, subprocess.Popen] = {}
    watch = Watch()
    for name in ("kafka", "elasticsearch"):
        pid = jvm_pid(name)
        if pid:
            watch.add(name, pid)
    es = Elasticsearch(es_url)
    msg_index, call_index = f"{prefix}sip-messages-*", f"{prefix}sip-calls-*"
    sampler = Sampler(bootstrap, msgs_topic, es_url, msg_index, args.sample_every)
    result: dict = {}
    try:
        procs["worker"] = subprocess.Popen([*py, "worker", "--role", "correlate"], cwd=ROOT, env=env,
                                           stdout=subprocess.DEVNULL, stderr=logs["worker"])
        procs["indexer"] = subprocess.Popen([*py, "index", "--families", "messages,calls"], cwd=ROOT, env=env,
                                            stdout=subprocess.DEVNULL, stderr=logs["indexer"])
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # both ready: worker loaded its partitions, indexer assigned
            w, i = (tmp / "worker.log").read_text(), (tmp / "indexer.log").read_text()
            if "partitions_loaded" in w and "partitions_assigned" in i:
                break
            for n, p in procs.items():
                if p.poll() is not None:
                    raise SystemExit(f"{n} exited: {(tmp / f'{n}.log').read_text()[-2000:]}")
            time.sleep(0.3)
        time.sleep(1)
        for n, p in procs.items():
            watch.add(n, p.pid)
        watch.start()
        sampler.start()
        t0 = time.time()
        cap = [*py, "capture", "--pcap", str(pcap), "--retime", "--speed", args.speed, "--quiet"]
        procs["capture"] = subprocess.Popen(cap, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=logs["capture"])
        watch.add("capture", procs["capture"].pid)
        while procs["capture"].poll() is None:
            watch.sample()
            time.sleep(0.2)
        t_cap = time.time()
        if procs["capture"].returncode != 0:
            raise SystemExit(f"capture failed: {(tmp / 'capture.log').read_text()[-2000:]}")
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-wm", "log_level": 0})
        published = sum(c.get_watermark_offsets(TopicPartition(msgs_topic, p), timeout=10)[1] for p in range(PARTITIONS))
        c.close()
        # wait until every published message is searchable
        deadline = time.monotonic() + args.drain_timeout
        indexed = 0
        while time.monotonic() < deadline:
            indexed = es_count(es, msg_index)
            if indexed >= published:
                break
            time.sleep(0.2)
        t_done = time.time()
        sampler.stop.set()
        sampler.join(30)
        calls_indexed = es_count(es, call_index, refresh=True)
        watch.sample()
        watch.stop.set()
        first_pub = sampler.first_pub or t0
        result = {"published": published, "indexed": indexed, "calls": calls_indexed, "t0": t0,
                  "first_pub": first_pub, "t_cap": t_cap, "t_done": t_done, "lat": sampler.lat,
                  "lat_at": sampler.lat_at, "per_second": sampler.per_second, "unfound": len(sampler.pending)}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        for f in logs.values():
            f.close()
        if not args.keep:
            cleanup(bootstrap, es, prefix)

    r = result
    offered_s = r["t_cap"] - r["first_pub"]
    e2e_s = r["t_done"] - r["first_pub"]
    rows = []
    corr_rows: list[tuple[str, int, float]] = []
    corr_ratio: float | None = None
    if not args.no_peers:
        from bench.bench_capture import ours, pyshark_fields, tshark_fields

        rows = [ours(pcap, 1), tshark_fields(pcap), pyshark_fields(pcap, args.pyshark_limit)]
        for cmd in args.peer_cmd:
            _out, cpu, wall = run_child(shlex.split(cmd.replace("{pcap}", shlex.quote(str(pcap)))))
            rows.append(Measure(f"peer: {cmd}", rows[0].items, cpu, wall))
        from bench.bench_correlation import whole_job

        corr_rows, corr_ratio = whole_job(pcap, 3)
    if not args.keep:
        pcap.unlink(missing_ok=True)

    print(f"# end-to-end benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine: {machine()}")
    print(f"traffic: {shown_gen} ({pcap.name}: {r['published']:,} SIP messages); replay: sipscope capture --pcap load.pcap "
          f"--retime --speed {args.speed}; 1 worker, 1 indexer (messages,calls), {PARTITIONS} partitions")
    print()
    print("| end to end | value |")
    print("|---|---:|")
    print(f"| SIP messages published / searchable | {r['published']:,} / {r['indexed']:,} |")
    print(f"| call summaries searchable at the end | {r['calls']:,} |")
    print(f"| replay (first publish .. capture exit) | {offered_s:.1f} s, {r['published'] / offered_s:,.0f} msg/s offered |")
    print(f"| sustained end to end (first publish .. all searchable) | {e2e_s:.1f} s, **{r['published'] / e2e_s:,.0f} msg/s** |")
    print(f"| drain after the replay ended | {r['t_done'] - r['t_cap']:.1f} s |")
    lat = r["lat"]
    print(f"| capture-to-searchable latency p50 / p99 / max ({len(lat)} samples, {r['unfound']} not found) | "
          f"**{pct(lat, 50):.2f} / {pct(lat, 99):.2f}** / {max(lat, default=float('nan')):.2f} s |")
    busy = busiest(r["per_second"], BUSY_S)
    if busy is not None:
        start, rate = busy
        in_busy = [x for t, x in r["lat_at"] if start <= t < start + BUSY_S]
        print(f"| busiest {BUSY_S} s of the replay: offered rate; latency p50 / p99 / max of its messages "
              f"({len(in_busy)} samples) | {rate:,.0f} msg/s; {pct(in_busy, 50):.2f} / {pct(in_busy, 99):.2f} / "
              f"{max(in_busy, default=float('nan')):.2f} s |")
    print()
    print("| stage | CPU s | share of one core over the run | msgs per CPU-second | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for name in ("capture", "worker", "indexer", "kafka", "elasticsearch"):
        if name not in watch.pids:
            continue
        used = watch.used(name)
        rate = f"{r['published'] / used:,.0f}" if used > 0 else "-"
        print(f"| {name} | {used:.1f} | {used / e2e_s:.0%} | {rate} | {watch.rss.get(name, 0):,.0f} |")
    total = sum(watch.used(n) for n in watch.pids)
    print(f"| all stages | {total:.1f} | {total / e2e_s:.0%} | {r['published'] / total:,.0f} | |")
    if rows:
        print()
        print("| parser on the same pcap (run after, alone) | SIP messages | CPU s | msgs per CPU-second | sipscope fast path is |")
        print("|---|---:|---:|---:|---:|")
        for m in rows:
            ratio = "1x" if m is rows[0] else f"{rows[0].per_core / m.per_core:.1f}x faster"
            print(f"| {m.name} | {m.items:,} | {m.cpu_s:.2f} | {m.per_core:,.0f} | {ratio} |")
    if corr_rows:
        print()
        print("| read + parse + correlate on the same pcap (run after, alone; 3 rounds taking turns) | SIP messages "
              "| CPU s (median) | msgs per CPU-second | sipscope's rate / this rate (median of the rounds) |")
        print("|---|---:|---:|---:|---:|")
        for name, n, cpu in corr_rows:
            shown = "1" if name == corr_rows[0][0] else f"{corr_ratio:.2f}"
            print(f"| {name} | {n:,} | {cpu:.2f} | {n / cpu:,.0f} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
