"""`make demo`: the main job on the local stack, as far as the pipeline goes today.

1. replay sample captures "as now" (``--retime``) through the capture agent into Kafka ``sip.messages``;
2. read them back from Kafka and print what arrived (per Call-ID);
3. when the later stages exist (worker, indexer, trace), run them too.

The captures come from ``../shared/testdata/pcaps`` when present, else from ``SIPSCOPE_DEMO_PCAPS``
(a colon-separated list of files).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sipscope.settings import PROJECT_ROOT, get_settings

DEMO_FILES = [
    "call-basic-udp-via-proxy.pcap",
    "b2bua-freeswitch-sbc-one-call-two-legs.pcap",
    "register-401-challenge-then-200.pcapng",
    "invite-488-not-acceptable-codec.pcapng",
    "call-ipv6-udp.pcap",
]


def demo_pcaps() -> list[Path]:
    env = os.environ.get("SIPSCOPE_DEMO_PCAPS")
    if env:
        return [Path(p) for p in env.split(":") if p]
    shared = PROJECT_ROOT.parent / "shared" / "testdata" / "pcaps"
    return [shared / f for f in DEMO_FILES if (shared / f).exists()]


def _run(*args: str) -> int:
    print(f"$ sipscope {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "sipscope.cli", *args])


def main() -> int:
    settings = get_settings()
    pcaps = demo_pcaps()
    if not pcaps:
        print("demo: no captures found (../shared/testdata/pcaps absent; set SIPSCOPE_DEMO_PCAPS)", file=sys.stderr)
        return 1
    print(f"demo: {len(pcaps)} captures -> Kafka {settings.kafka.bootstrap}")
    for p in pcaps:
        rc = _run("capture", "--pcap", str(p), "--retime", "--quiet")
        if rc != 0:
            return rc
    have = {m: importlib.util.find_spec(m) is not None for m in ("streams.worker", "indexers.indexer")}
    if have["streams.worker"] or have["indexers.indexer"]:
        print("demo: later stages present:", ", ".join(k for k, v in have.items() if v))
    _show_kafka(settings)
    return 0


def _show_kafka(settings) -> None:
    from confluent_kafka import Consumer

    from sipscope import records, topics
    from sipscope.records import SipMessage

    c = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"sipscope-demo-{time.time_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 0})
    c.subscribe([topics.name(topics.MESSAGES, settings)])
    per_call: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    idle = 0
    try:
        while idle < 10:
            m = c.poll(0.5)
            if m is None or m.error():
                idle += 1
                continue
            idle = 0
            r = records.decode(m.value(), SipMessage)
            per_call[r.call_id] += 1
            methods[r.method or str(r.status_code)] += 1
    finally:
        c.close()
    print(f"demo: sip.messages holds {sum(per_call.values())} messages of {len(per_call)} Call-IDs")
    print("demo: by method/status:", ", ".join(f"{k} {v}" for k, v in methods.most_common()))


if __name__ == "__main__":
    sys.exit(main())
