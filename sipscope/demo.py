"""`make demo`: the whole pipeline on the local stack, end to end.

1. ``sipscope setup``: index templates (and the ILM policy where the cluster has ILM);
2. start the stream workers (``sipscope worker``: correlation, and ``--role analytics``: KPIs and alerts)
   and the indexer (``sipscope index``) in the background, logs under ``<state>/demo/``;
3. replay sample captures "as now" (``--retime``) through the capture agent into Kafka;
4. wait until Elasticsearch has them, then ``sipscope trace`` a number and list its calls;
5. create a demo login and serve the trace UI on http://127.0.0.1:8080 (only when run from a terminal;
   otherwise it prints how to start it). Ctrl-C stops the UI and the background processes.

Captures come from ``../shared/testdata/pcaps`` when present, else from ``SIPSCOPE_DEMO_PCAPS`` (a
colon-separated list of files).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from sipscope.settings import PROJECT_ROOT, get_settings

DEMO_FILES = [
    "call-basic-udp-via-proxy.pcap",
    "b2bua-freeswitch-sbc-one-call-two-legs.pcap",
    "register-401-challenge-then-200.pcapng",
    "invite-488-not-acceptable-codec.pcapng",
    "wireshark-aaa-register-auth-cancel-408-480.pcap",
    "attack-sipcli-invite-401-482-503.pcap",
]
DEMO_NUMBER = "101"  # the callee of call-basic-udp-via-proxy.pcap


def demo_pcaps() -> list[Path]:
    env = os.environ.get("SIPSCOPE_DEMO_PCAPS")
    if env:
        return [Path(p) for p in env.split(":") if p]
    shared = PROJECT_ROOT.parent / "shared" / "testdata" / "pcaps"
    return [shared / f for f in DEMO_FILES if (shared / f).exists()]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sipscope.cli", *args]


def _run(*args: str) -> int:
    print(f"\n$ sipscope {' '.join(args)}", flush=True)
    return subprocess.call(_cmd(*args))


def _start(name: str, logdir: Path, *args: str) -> subprocess.Popen:
    log = open(logdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
    print(f"demo: starting `sipscope {' '.join(args)}` (log {logdir / (name + '.log')})", flush=True)
    return subprocess.Popen(_cmd(*args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _indexed(settings, family: str) -> int:
    from elasticsearch import Elasticsearch

    es = Elasticsearch(settings.elasticsearch.url)
    try:
        return int(es.options(ignore_status=404).count(index=f"{settings.elasticsearch.index_prefix}{family}-*")["count"])
    except Exception:  # noqa: BLE001 - not there yet
        return 0


def _wait_indexed(settings, family: str, want: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = _indexed(settings, family)
        if n >= want:
            break
        time.sleep(1)
    return n


def main() -> int:
    settings = get_settings()
    pcaps = demo_pcaps()
    if not pcaps:
        print("demo: no captures found (../shared/testdata/pcaps absent; set SIPSCOPE_DEMO_PCAPS)", file=sys.stderr)
        return 1
    logdir = Path(settings.stack.state_dir) / "demo"
    logdir.mkdir(parents=True, exist_ok=True)
    if _run("setup") != 0:
        return 1
    procs = [
        _start("worker", logdir, "worker"),
        _start("analytics", logdir, "worker", "--role", "analytics"),
        _start("indexer", logdir, "index"),
    ]
    try:
        before = _indexed(settings, "sip-messages")
        calls_before = _indexed(settings, "sip-calls")
        sent = 0
        for p in pcaps:
            if _run("capture", "--pcap", str(p), "--retime", "--quiet") != 0:
                return 1
            sent += _count_messages(p)
        got = _wait_indexed(settings, "sip-messages", before + sent, 90)
        print(f"\ndemo: replayed {sent} messages; Elasticsearch holds {got} SIP messages (was {before})", flush=True)
        # a call's summary comes once it has ended by event time: BYE + a few seconds, and an idle partition
        # is moved on by the wall clock (worker.clock_lag_s), so allow up to a minute and a half
        want_calls = calls_before + sum(_count_calls(p) for p in pcaps)
        have = _wait_indexed(settings, "sip-calls", want_calls, 90)
        print(f"demo: {have - calls_before} new call summaries indexed (expected {want_calls - calls_before})", flush=True)
        if have < want_calls:
            print("demo: (a capture replayed again within a few minutes reuses its Call-IDs, which the worker still "
                  "remembers as finished calls: their new messages are indexed, but no second summary is made)", flush=True)
        _run("trace", DEMO_NUMBER, "--last", "1h")
        _run("trace", DEMO_NUMBER, "--last", "1h", "--calls")
        _serve_ui(settings)
    finally:
        _stop(procs)
    return 0


def _count_messages(pcap: Path) -> int:
    from producers.cli import _options, file_payloads
    from producers.pipeline import Stats, records_from

    settings = get_settings()
    stats = Stats()
    for _ in records_from(file_payloads(str(pcap), None, settings), _options(settings, "demo"), stats):
        pass
    return stats.messages


def _count_calls(pcap: Path) -> int:
    from streams.analyze import analyze_file

    return len(analyze_file(str(pcap), get_settings()).calls)


def _serve_ui(settings) -> None:
    listen = settings.web.listen
    if not sys.stdin.isatty():
        print(f"\ndemo: to browse it, `sipscope users add NAME` then `sipscope ui` (http://{listen})", flush=True)
        return
    password = secrets.token_urlsafe(9)
    subprocess.run(_cmd("users", "add", "demo", "--password-stdin", "--replace"), input=password + "\n", text=True, check=False)
    print(f"\ndemo: trace UI on http://{listen} - log in as demo / {password} - Ctrl-C to stop everything", flush=True)
    try:
        subprocess.call(_cmd("ui"))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
