"""Indexer benchmark: documents/s from Kafka into the local Elasticsearch, then number-search latency.

1. builds N SipMessage records from the real messages of a capture (their raw text, headers, agents),
   renumbered as calls between a pool of +351 subscribers and spread over the last ``--days`` days (so
   several daily indices exist), and publishes them to a private topic prefix;
2. runs the indexer (the real one: consumer group, streaming_bulk, commits) until the topic is drained;
   docs/s = documents / (first batch start .. last batch end), and the CPU it used;
3. runs ``--searches`` number searches through :class:`indexers.search.Searcher` over ``--last 5d``, in
   every form (+E.164, national, 6-8 trailing digits), both "matching messages" and "whole calls", and
   reports p50/p95 of the client-side latency.

Indices and topics of the run are deleted at the end unless ``--keep``.

Usage: python -m bench.bench_indexer [--messages 200000] [--searches 300] [--batch-size 2000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid

import msgspec

from bench.common import SHARED_PCAPS, machine, timed

DEFAULT_PCAP = SHARED_PCAPS / "sipp-branch-load-1334-calls-403.pcapng"


def templates(pcap) -> list:
    from producers.cli import file_payloads
    from producers.pipeline import Options, Stats, records_from
    from sipscope.numbers import NumberPlan
    from sipscope.records import SipMessage
    from sipscope.settings import get_settings

    recs = records_from(file_payloads(str(pcap), None, get_settings()), Options(plan=NumberPlan("351")), Stats())
    by_call: dict[str, list] = {}
    for r in recs:
        if type(r) is SipMessage:
            by_call.setdefault(r.call_id, []).append(r)
    return [msgs for msgs in by_call.values() if len(msgs) >= 3]


def generate(n: int, days: float, calls_tpl: list, subscribers: int, seed: int):
    """Yield (record, caller) in calls of the template's message count, numbers drawn from the pool."""
    rng = random.Random(seed)
    now = time.time()
    made = 0
    while made < n:
        tpl = calls_tpl[rng.randrange(len(calls_tpl))]
        a, b = rng.randrange(subscribers), rng.randrange(subscribers)
        caller, callee = f"3519{a:08d}", f"3519{b:08d}"
        start = now - rng.random() * days * 86400
        call_id = f"{uuid.uuid4().hex}@bench"
        t0 = tpl[0].ts
        for m in tpl:
            if made >= n:
                return
            fwd = m.from_user == tpl[0].from_user
            fu, tu = (caller, callee) if fwd else (callee, caller)
            yield msgspec.structs.replace(
                m, id=uuid.uuid4().hex, ts=start + (m.ts - t0), call_id=call_id,
                from_user="+" + fu, from_user_e164=fu, to_user="0" + tu[3:], to_user_e164=tu,
                ruri_user=("0" + tu[3:]) if m.is_request else None, ruri_user_e164=tu if m.is_request else None,
            ), caller
            made += 1


def publish(settings, n: int, days: float, pcap, subscribers: int, seed: int) -> tuple[float, list[str]]:
    from confluent_kafka import Producer

    from sipscope import records, topics

    topic = topics.name(topics.MESSAGES, settings)
    topics.ensure(settings.kafka.bootstrap, [topic, topics.name(topics.REJECTED, settings)], settings.kafka.partitions)
    p = Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 50, "compression.type": "zstd",
                  "batch.size": 1_000_000, "queue.buffering.max.messages": 500_000, "log_level": 3})
    callers: list[str] = []
    t0 = time.perf_counter()
    for i, (rec, caller) in enumerate(generate(n, days, templates(pcap), subscribers, seed)):
        if i % 7 == 0:
            callers.append(caller)
        while True:
            try:
                p.produce(topic, records.encode(rec), rec.call_id.encode())
                break
            except BufferError:
                p.poll(0.1)
        if i % 10000 == 0:
            p.poll(0)
            print(f"\rpublished {i:,}/{n:,}", end="", file=sys.stderr, flush=True)
    p.flush(120)
    print(file=sys.stderr)
    return n / (time.perf_counter() - t0), callers


def index(settings) -> dict:
    from indexers.indexer import Indexer

    marks: dict[str, float] = {}

    class Timed(Indexer):
        def _handle(self, batch):
            marks.setdefault("first", time.perf_counter())
            super()._handle(batch)
            marks["last"] = time.perf_counter()

    ix = Timed(settings, families=["messages"])
    with timed() as t:
        summary = ix.run(exit_when_idle=5.0)
    span = marks["last"] - marks["first"]
    return {"docs": summary.docs, "rejected": summary.rejected, "retries": summary.retries,
            "batches": summary.batches, "seconds": round(span, 1), "docs_per_s": round(summary.docs / span),
            "indexer_cpu_s": round(t.cpu, 1), "indexer_docs_per_cpu_s": round(summary.docs / t.cpu)}


def search(settings, callers: list[str], k: int, seed: int) -> dict:
    from indexers.es import client
    from indexers.search import Searcher

    rng = random.Random(seed + 1)
    searcher = Searcher(client(settings), settings)
    forms = {
        "+E.164": lambda e: "+" + e,
        "national": lambda e: "0" + e[3:],
        "suffix 6-8 digits": lambda e: e[-rng.randint(6, 8):],
    }
    out = {}
    for whole in (False, True):
        lat: dict[str, list[float]] = {f: [] for f in forms}
        hits = 0
        for i in range(k):
            name = list(forms)[i % len(forms)]
            number = forms[name](rng.choice(callers))
            t0 = time.perf_counter()
            page = searcher.messages(number, last="5d", whole_calls=whole, size=100, with_raw=False)
            lat[name].append((time.perf_counter() - t0) * 1000)
            hits += bool(page.total)
        every = sorted(x for v in lat.values() for x in v)
        key = "whole calls" if whole else "matching messages"
        out[key] = {"searches": k, "found": hits, "p50_ms": round(statistics.median(every), 1),
                    "p95_ms": round(every[int(0.95 * (len(every) - 1))], 1),
                    "by_form_p95_ms": {f: round(sorted(v)[int(0.95 * (len(v) - 1))], 1) for f, v in lat.items() if v}}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000, help="messages to index (the issue's target: 5,000,000)")
    ap.add_argument("--searches", type=int, default=300)
    ap.add_argument("--days", type=float, default=4.5, help="spread of the messages' times (daily indices)")
    ap.add_argument("--subscribers", type=int, default=100_000, help="distinct phone numbers")
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--pcap", default=str(DEFAULT_PCAP), help="capture whose messages serve as templates")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the indices and topics of the run")
    args = ap.parse_args(argv)

    from sipscope.logs import configure_logging
    from sipscope.settings import (
        ElasticsearchSettings,
        IndexerSettings,
        KafkaSettings,
        Settings,
    )

    configure_logging()  # logs on stderr; the result is the JSON on stdout
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    base = Settings()
    settings = Settings(
        kafka=KafkaSettings(bootstrap=base.kafka.bootstrap, topic_prefix=prefix, partitions=6),
        elasticsearch=ElasticsearchSettings(url=base.elasticsearch.url, index_prefix=prefix),
        numbering={"country_code": "351"},
        indexer=IndexerSettings(group_id=f"{prefix}indexer", batch_size=args.batch_size, sweep_interval=0,
                                progress_interval=15),
        log_json=True,
    )
    try:
        rate, callers = publish(settings, args.messages, args.days, args.pcap, args.subscribers, args.seed)
        result = {"machine": machine(), "messages": args.messages, "days": args.days,
                  "publish_msgs_per_s": round(rate), "indexing": index(settings)}
        from indexers.es import client

        es = client(settings)
        es.indices.refresh(index=f"{prefix}sip-messages-*")
        stats = es.indices.stats(index=f"{prefix}sip-messages-*", metric="docs,store")["_all"]["primaries"]
        result["index"] = {"docs": stats["docs"]["count"], "store_mb": round(stats["store"]["size_in_bytes"] / 2**20),
                           "daily_indices": len(es.cat.indices(index=f"{prefix}sip-messages-*", format="json"))}
        result["search"] = search(settings, callers, args.searches, args.seed)
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            _cleanup(settings, prefix)
    return 0


def _cleanup(settings, prefix: str) -> None:
    from confluent_kafka.admin import AdminClient

    from indexers.es import client
    from sipscope import topics

    client(settings).options(ignore_status=404).indices.delete(index=f"{prefix}*", expand_wildcards="all")
    client(settings).options(ignore_status=404).indices.delete_index_template(name=f"{prefix}*")
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap, "log_level": 0})
    futures = {**admin.delete_topics([topics.name(t, settings) for t in (topics.MESSAGES, topics.REJECTED)],
                                     operation_timeout=30),
               **admin.delete_consumer_groups([settings.indexer.group_id], request_timeout=30)}
    for name, f in futures.items():
        try:
            f.result()
        except Exception as exc:  # noqa: BLE001 - report and go on cleaning
            print(f"cleanup: {name}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
