"""Elasticsearch CPU per SIP message document: the shipped ``sip-messages`` layout vs the same layout with
``raw`` analysed as full text (layout v1), side by side in one run, rounds interleaved.

Documents are real SipMessage records of a capture (replicated with new ids), bulk-indexed straight into
scratch indices ``bench-layout-*`` (no ILM, no replicas); the cost is the Elasticsearch process's CPU
(``/proc/<pid>/stat``) from the first bulk request to the end of a refresh + flush. The first round warms
the JVM and is not counted.

Usage: python -m bench.bench_es_layout [--docs 60000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import msgspec

from bench.common import SHARED_PCAPS, machine

ROOT = Path(__file__).resolve().parents[1]
CLK = os.sysconf("SC_CLK_TCK")


def es_cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK


def layouts() -> dict[str, dict]:
    tpl = json.loads((ROOT / "infra/elasticsearch/templates/sip-messages.json").read_text())["template"]
    tpl["settings"]["index"].pop("lifecycle", None)
    tpl["settings"]["index"]["auto_expand_replicas"] = "0-0"
    v1 = copy.deepcopy(tpl)
    v1["mappings"]["properties"]["raw"] = {"type": "text", "norms": False}
    return {"shipped (raw stored, not indexed)": tpl, "raw analysed as text (v1)": v1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=60000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--pcap", default=str(SHARED_PCAPS / "sipp-branch-load-1334-calls-403.pcapng"))
    a = ap.parse_args()
    from elasticsearch import Elasticsearch, helpers

    from indexers.documents import to_document
    from indexers.families import FAMILIES
    from producers.cli import _options, file_payloads
    from producers.pipeline import Stats, records_from
    from sipscope.records import SipMessage
    from sipscope.settings import get_settings
    from sipscope.stack import paths_for

    s = get_settings()
    pid = int(paths_for(s).es_pid.read_text().split()[0])
    recs = [r for r in records_from(file_payloads(a.pcap, None, s), _options(s, "bench"), Stats())
            if isinstance(r, SipMessage)]
    docs: list[dict] = []
    k = 0
    while len(docs) < a.docs:
        for r in recs:
            r2 = msgspec.structs.replace(r, id=f"{r.id}-{k}", call_id=f"{r.call_id}~{k}")
            docs.append(to_document(r2, FAMILIES["messages"])[1])
        k += 1
    docs = docs[: a.docs]
    es = Elasticsearch(s.elasticsearch.url)
    results: dict[str, list[float]] = {}
    for rnd in range(a.rounds):
        for name, layout in layouts().items():
            idx = f"bench-layout-{rnd}-{abs(hash(name)) % 10000}"
            es.options(ignore_status=404).indices.delete(index=idx)
            es.indices.create(index=idx, settings=layout["settings"], mappings=layout["mappings"])
            c0 = es_cpu(pid)
            for _ok, _info in helpers.streaming_bulk(
                    es, ({"_index": idx, "_id": d["id"], "_source": d} for d in docs), chunk_size=2000):
                pass
            es.indices.refresh(index=idx)
            es.indices.flush(index=idx)
            time.sleep(1.0)
            cpu = es_cpu(pid) - c0
            es.indices.delete(index=idx)
            if rnd:
                results.setdefault(name, []).append(a.docs / cpu)
            print(f"round {rnd}{' (warm-up)' if not rnd else ''}: {name}: {a.docs / cpu:,.0f} docs per ES CPU-second",
                  flush=True)
    print(f"\n# Elasticsearch layout benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"machine: {machine()}; {a.docs} documents of {Path(a.pcap).name}, {a.rounds - 1} counted rounds\n")
    print("| sip-messages layout | docs per ES CPU-second (median) | vs v1 |")
    print("|---|---:|---:|")
    base = statistics.median(results["raw analysed as text (v1)"])
    for name, vals in results.items():
        med = statistics.median(vals)
        print(f"| {name} | {med:,.0f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
