"""Elasticsearch CPU per SIP message document: the shipped ``sip-messages`` layout vs earlier layouts (v1:
``raw`` analysed as full text and every keyword indexed with doc values; v2: ``raw`` stored only), side by
side in one run, rounds interleaved.

Documents are the SipMessage records of a capture (default: a fresh ``sipscope loadgen`` carrier mix, so
Call-IDs, tags, branches and numbers are as unique as in production), bulk-indexed straight into
scratch indices ``bench-layout-*`` (no ILM, no replicas); the cost is the Elasticsearch process's CPU
(``/proc/<pid>/stat``) from the first bulk request to the end of a refresh + flush. The first round warms
the JVM and is not counted.

``--compare settings`` compares index settings of the shipped layout instead (refresh interval, codec, merge
policy); ``--rate N`` sends the documents at N per second in bulks of ``--bulk`` (as the indexer does at a
steady load, so refreshes and merges happen as they do in production) instead of as fast as possible.

Usage: python -m bench.bench_es_layout [--docs 60000] [--rounds 4] [--compare layouts|settings]
                                       [--rate 3500 --bulk 1000]
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

from bench.common import machine

ROOT = Path(__file__).resolve().parents[1]
CLK = os.sysconf("SC_CLK_TCK")


def es_cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK


DISPLAY_ONLY = ("from_display", "to_display", "from_tag", "to_tag", "via_branch", "contact", "reason_text")


def layouts() -> dict[str, dict]:
    tpl = json.loads((ROOT / "infra/elasticsearch/templates/sip-messages.json").read_text())["template"]
    tpl["settings"]["index"].pop("lifecycle", None)
    tpl["settings"]["index"]["auto_expand_replicas"] = "0-0"
    v1 = copy.deepcopy(tpl)
    props = v1["mappings"]["properties"]
    props["raw"] = {"type": "text", "norms": False}
    for f in DISPLAY_ONLY:
        props[f] = {"type": "keyword", "ignore_above": 1024}
    v2 = copy.deepcopy(v1)
    v2["mappings"]["properties"]["raw"] = {"type": "text", "index": False}
    return {"shipped": tpl, "v2: raw stored only": v2, "v1: raw analysed, all keywords indexed": v1}


def setting_variants() -> dict[str, dict]:
    """The shipped layout with one index setting changed at a time."""
    tpl = layouts()["shipped"]
    out = {"shipped": tpl}
    for name, change in (("refresh_interval 2s", {"refresh_interval": "2s"}),
                         ("codec default (LZ4 stored fields)", {"codec": "default"}),
                         ("merge segments_per_tier 20", {"merge": {"policy": {"segments_per_tier": 20}}})):
        v = copy.deepcopy(tpl)
        v["settings"]["index"].update(change)
        out[name] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=60000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--compare", choices=("layouts", "settings"), default="layouts")
    ap.add_argument("--rate", type=float, default=0.0, help="documents per second (0 = as fast as possible)")
    ap.add_argument("--bulk", type=int, default=2000, help="documents per bulk request")
    ap.add_argument("--pcap", help="capture to take the messages from (default: sipscope loadgen --cps 200 "
                                   "--duration 60 --seed 1)")
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
    if a.pcap is None:
        import subprocess
        import sys
        import tempfile
        a.pcap = str(Path(tempfile.mkdtemp(prefix="bench-layout-")) / "load.pcap")
        subprocess.run([sys.executable, "-m", "sipscope.cli", "loadgen", "--out", a.pcap, "--cps", "200",
                        "--duration", "60", "--seed", "1", "--quiet"], check=True, cwd=ROOT)
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
    variants = layouts() if a.compare == "layouts" else setting_variants()
    for rnd in range(a.rounds):
        for k, (name, layout) in enumerate(variants.items()):
            idx = f"bench-layout-{rnd}-{k}"
            es.options(ignore_status=404).indices.delete(index=idx)
            es.indices.create(index=idx, settings=layout["settings"], mappings=layout["mappings"])
            c0 = es_cpu(pid)
            t0 = time.monotonic()
            for i in range(0, len(docs), a.bulk):
                if a.rate:  # paced: bulk i leaves at i / rate seconds
                    time.sleep(max(0.0, t0 + i / a.rate - time.monotonic()))
                for _ok, _info in helpers.streaming_bulk(
                        es, ({"_index": idx, "_id": d["id"], "_source": d} for d in docs[i:i + a.bulk]),
                        chunk_size=a.bulk):
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
    pace = f"{a.rate:,.0f} docs/s in bulks of {a.bulk}" if a.rate else f"as fast as possible, bulks of {a.bulk}"
    print(f"machine: {machine()}; {a.docs} documents of {Path(a.pcap).name}, {pace}, {a.rounds - 1} counted rounds\n")
    ref = "v1: raw analysed, all keywords indexed" if a.compare == "layouts" else "shipped"
    print(f"| sip-messages {'layout' if a.compare == 'layouts' else 'settings'} | docs per ES CPU-second (median) "
          f"| vs {ref.split(':')[0]} |")
    print("|---|---:|---:|")
    base = statistics.median(results[ref])
    for name, vals in results.items():
        med = statistics.median(vals)
        print(f"| {name} | {med:,.0f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
