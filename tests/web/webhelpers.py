"""Helpers of the web tests: real captures -> capture code -> offline correlation -> real Elasticsearch.

The data path is the pipeline's own code: ``producers`` parses the capture (retimed so it ends now),
``streams.analyze`` correlates it and runs the KPI and anomaly engines, and the indexer's document
helpers (``indexers.documents.action``) write every record into the test's own daily indices, installed
by ``indexers.layout.setup`` with the test's prefix. Imported by the test modules (``from webhelpers import``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch, helpers

from indexers import documents, layout
from indexers.families import FAMILIES
from sipscope.records import Alert, CallSummary, Registration, SipMessage, StatsRow
from sipscope.settings import (
    CorrelationSettings,
    ElasticsearchSettings,
    NumberingSettings,
    Settings,
    WebSettings,
)

PCAPS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "pcaps"
PLAN_PT = NumberingSettings(country_code="351", trunk_prefix="0", international_prefix="00")
PASSWORD = "correct horse battery"
PROXY = "call-basic-udp-via-proxy.pcap"
B2BUA = "b2bua-freeswitch-sbc-one-call-two-legs.pcap"
SIPCLI = "attack-sipcli-invite-401-482-503.pcap"
REGISTER = "register-401-challenge-then-200.pcapng"


def web_settings(es_url: str, prefix: str, tmp: Path, **web) -> Settings:
    w = {"users_file": tmp / "users.json", "secret_file": tmp / "web-secret", "page_size": 50, **web}
    return Settings(elasticsearch=ElasticsearchSettings(url=es_url, index_prefix=prefix), numbering=PLAN_PT,
                    web=WebSettings(**w), correlation=CorrelationSettings(trunks={"10.33.6.0/24": "lab-a"}),
                    log_json=True)


def capture_messages(settings: Settings, path: Path, end_at: float | None = None) -> list[SipMessage]:
    """The SIP messages of a capture, shifted so that the capture ends at ``end_at`` (default now)."""
    from producers.cli import _options, file_payloads, last_capture_time
    from producers.pipeline import Stats, records_from, retimed

    if not path.exists():
        pytest.skip(f"{path} is absent (third-party captures live outside the project)")
    shift = (end_at or time.time()) - last_capture_time(str(path))
    payloads = retimed(file_payloads(str(path), None, settings), shift)
    msgs = [r for r in records_from(payloads, _options(settings, "test"), Stats()) if type(r) is SipMessage]
    msgs.sort(key=lambda m: m.ts)
    return msgs


def analyze(settings: Settings, msgs: list[SipMessage]) -> list:
    """Every record the pipeline derives from ``msgs``: calls, registrations, KPI rows, alerts."""
    from streams.analyze import analyze_messages
    from streams.anomaly.engine import AnomalyEngine
    from streams.kpis import KpiRollup

    report = analyze_messages(msgs, settings.correlation,
                              [KpiRollup.from_settings(settings), AnomalyEngine.from_settings(settings)])
    return [*report.calls, *report.registrations, *report.stats, *report.alerts]


_FAMILY_OF = {SipMessage: "messages", CallSummary: "calls", Registration: "registrations", StatsRow: "stats",
              Alert: "alerts"}


def index_records(es: Elasticsearch, settings: Settings, recs: list) -> int:
    """Write records into the test's daily indices (the indexer's own document code) and refresh."""
    prefix = settings.elasticsearch.index_prefix
    layout.setup(es, settings)
    actions = [documents.action(r, b"", FAMILIES[_FAMILY_OF[type(r)]], prefix) for r in recs]
    ok, errors = helpers.bulk(es, actions, raise_on_error=False, refresh="wait_for")
    assert not errors, errors[:3]
    es.indices.refresh(index=f"{prefix}sip-*", allow_no_indices=True)
    return ok


def index_captures(es: Elasticsearch, settings: Settings, names: dict[str, float] | list[str],
                   now: float | None = None) -> dict[str, list]:
    """Index captures, each retimed to end ``names[name]`` seconds before ``now`` (0 for a list), and
    correlated together in one run (as one worker would see them); returns name -> its messages."""
    now = now or time.time()
    ends = names if isinstance(names, dict) else dict.fromkeys(names, 0.0)
    out = {name: capture_messages(settings, PCAPS / name, now - ago) for name, ago in ends.items()}
    msgs = sorted((m for ms in out.values() for m in ms), key=lambda m: m.ts)
    index_records(es, settings, msgs + analyze(settings, msgs))
    return out


def drop_prefix(es_url: str, prefix: str) -> None:
    es = Elasticsearch(es_url)
    es.options(ignore_status=404).indices.delete(index=f"{prefix}*", expand_wildcards="all")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}*")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app, port: int | None = None) -> Iterator[str]:
    """The app under uvicorn in a background thread on a free loopback port; yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
