"""Faults: Elasticsearch pushing back (429/503), answers lost after the write, Elasticsearch stopped and
restarted mid-indexing (a private node), an indexer SIGKILLed mid-batch. Each time every record is
indexed exactly once: document count == distinct messages sent, and offsets end up committed.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from elasticsearch import ApiError
from ixhelpers import (
    IndexerThread,
    make_settings,
    produce_records,
    synthetic_messages,
    wait_count,
)

from indexers import metrics
from indexers.es import client
from sipscope import stack as stackmod
from sipscope import topics
from sipscope.settings import Settings, StackSettings

pytestmark = pytest.mark.stack


# ---------------------------------------------------------------- a faulty proxy in front of Elasticsearch


class _Proxy(BaseHTTPRequestHandler):
    """Forwards to Elasticsearch; bulk requests consume a script of faults first:
    ``429``/``503`` answer that status without forwarding, ``drop`` forwards the write and then closes the
    connection without an answer (Elasticsearch did the work, the client never hears of it)."""

    protocol_version = "HTTP/1.1"
    upstream = ("127.0.0.1", 9200)
    script: ClassVar[list[str]] = []
    bulks = 0

    def _handle(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = None
        if "/_bulk" in self.path:
            type(self).bulks += 1
            if type(self).script:
                fault = type(self).script.pop(0)
        if fault in ("429", "503"):
            out = b'{"error":{"type":"es_rejected_execution_exception","reason":"injected"},"status":%s}' % fault.encode()
            self.send_response(int(fault))
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def faulty_es(stack):
    host, port = stack.es_url.rsplit("//", 1)[1].split(":")
    _Proxy.upstream = (host, int(port))
    _Proxy.script, _Proxy.bulks = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", _Proxy
    server.shutdown()


def test_push_back_and_lost_answers_are_retried_without_duplicates(stack, names, tmp_path, faulty_es):
    url, proxy = faulty_es
    settings = make_settings(stack, names.prefix, tmp_path, es_url=url, batch_size=300, backoff_max=0.5)
    proxy.script = ["429", "429", "503", "drop", "drop"]
    msgs = synthetic_messages(2000)
    produce_records(settings, topics.MESSAGES, msgs)
    paused_seen = []
    ix = IndexerThread(settings, exit_when_idle=1.5).start()
    while ix.alive:
        paused_seen.append(metrics.PAUSED._value.get())
        time.sleep(0.05)
    ix.join()
    es = client(make_settings(stack, names.prefix, tmp_path))
    assert wait_count(es, f"{names.prefix}sip-messages-*", 2000) == 2000
    time.sleep(1.5)
    assert es.count(index=f"{names.prefix}sip-messages-*")["count"] == 2000, "nothing twice"
    s = ix.indexer.summary
    assert s.docs >= 2000 and s.rejected == 0
    assert s.retries == 5 and proxy.script == []
    assert 1 in paused_seen, "partitions were paused while Elasticsearch pushed back"


# ---------------------------------------------------------------- a private Elasticsearch, stopped and restarted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_es(tmp_path_factory):
    """A second Elasticsearch of our own (own state dir, free ports): the session's node is never stopped."""
    base = Path("/var/tmp") if os.geteuid() == 0 else tmp_path_factory.mktemp("es")
    port = _free_port()
    st = StackSettings(state_dir=base / f"sipscope-idxfault-{os.getpid()}", es_port=port, es_transport_port=_free_port())
    settings = Settings(stack=st)
    paths = stackmod.paths_for(settings)
    try:
        stackmod.start_es(settings, paths)
        yield settings, paths, f"http://127.0.0.1:{port}"
    finally:
        stackmod.down(settings, quiet=True)
        subprocess.run(["rm", "-rf", str(st.state_dir)], check=False)


def test_elasticsearch_stopped_and_restarted_mid_indexing_loses_and_duplicates_nothing(stack, names, tmp_path, private_es):
    es_settings, paths, url = private_es
    settings = make_settings(stack, names.prefix, tmp_path, es_url=url, batch_size=200, backoff_max=1.0)
    es = client(settings)
    first, second = synthetic_messages(6000), synthetic_messages(2000)
    produce_records(settings, topics.MESSAGES, first)
    ix = IndexerThread(settings).start()
    try:
        # stop Elasticsearch as soon as indexing is under way
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and wait_count(es, f"{names.prefix}sip-messages-*", 1, timeout=0.2) < 1:
            time.sleep(0.05)
        stackmod.down(es_settings, quiet=True)
        produce_records(settings, topics.MESSAGES, second)  # keeps arriving while Elasticsearch is down
        time.sleep(3)
        assert ix.alive, f"the indexer must wait, not die: {ix.error!r}"
        assert ix.indexer.summary.retries > 0 and ix.indexer._paused_since is not None
        stackmod.start_es(es_settings, paths)
        assert wait_count(es, f"{names.prefix}sip-messages-*", 8000, timeout=90) == 8000
        time.sleep(1.5)
        es.indices.refresh(index=f"{names.prefix}sip-messages-*")
        assert es.count(index=f"{names.prefix}sip-messages-*")["count"] == 8000, "nothing twice"
        assert ix.alive
    finally:
        ix.stop()
    assert ix.indexer._paused_since is None


# ---------------------------------------------------------------- an indexer process SIGKILLed mid-batch


def _indexer_env(settings: Settings) -> dict:
    env = dict(os.environ)
    env.update({
        "SIPSCOPE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "SIPSCOPE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "SIPSCOPE_ELASTICSEARCH__URL": settings.elasticsearch.url,
        "SIPSCOPE_ELASTICSEARCH__INDEX_PREFIX": settings.elasticsearch.index_prefix,
        "SIPSCOPE_INDEXER__GROUP_ID": settings.indexer.group_id,
        "SIPSCOPE_INDEXER__BATCH_SIZE": "300",
        "SIPSCOPE_INDEXER__FLUSH_INTERVAL": "0.2",
        "SIPSCOPE_INDEXER__SESSION_TIMEOUT_MS": "6000",
        "SIPSCOPE_INDEXER__SWEEP_INTERVAL": "0",
    })
    return env


def _count(es, index: str) -> int:
    """Documents searchable now; 0 while the first daily index is still being created."""
    try:
        return es.count(index=index, allow_no_indices=True, ignore_unavailable=True)["count"]
    except ApiError:
        return 0


def test_indexer_killed_mid_batch_and_restarted_loses_and_duplicates_nothing(isettings):
    msgs = synthetic_messages(20000, calls=500)
    produce_records(isettings, topics.MESSAGES, msgs)
    es = client(isettings)
    index = f"{isettings.elasticsearch.index_prefix}sip-messages-*"
    cmd = [sys.executable, "-m", "sipscope.cli", "index", "--families", "messages"]
    env = _indexer_env(isettings)
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _count(es, index) < 1:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = wait_count(es, index, 0, timeout=1)
    assert 0 < killed_at < 20000, f"the kill must land mid-stream (indexed {killed_at})"
    second = subprocess.run(cmd + ["--exit-when-idle", "2"], check=False, env=env, capture_output=True, text=True, timeout=150)
    assert second.returncode == 0, second.stderr[-2000:]
    assert wait_count(es, index, 20000) == 20000
    time.sleep(1.5)
    es.indices.refresh(index=index)
    assert es.count(index=index)["count"] == 20000, "nothing twice"
