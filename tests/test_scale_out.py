"""Scale-out on the real stack: two ``sipscope worker`` processes with one app id and two ``sipscope index``
processes with one group id split the partitions of 6-partition topics, and a loadgen capture still gives
exactly one call summary per call (in Kafka's sip.calls and in Elasticsearch's sip-calls-*) and every message
indexed once.

The capture is written by ``sipscope loadgen`` (seed 1) with its ``--plan`` ground truth, in simulated time
(2025-01-06): once the workers' partitions go idle, the wall-clock tick moves event time past every timeout,
so every call closes without waiting for real hold times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from sipscope import records, topics
from sipscope.records import CallSummary, SipMessage
from sipscope.settings import KafkaSettings, Settings

pytestmark = [pytest.mark.stack, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 6


class Proc:
    """A sipscope subprocess whose stderr (JSON log lines) goes to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._err = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "sipscope.cli", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=self._err)

    def events(self, name: str) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                if d.get("event") == name:
                    out.append(d)
        return out

    def alive(self) -> None:
        assert self.proc.poll() is None, f"{self.log.name} exited:\n" + self.log.read_text()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._err.close()


def group_assignment(admin, group: str, topic: str) -> list[set[int]]:
    """Partitions of ``topic`` held by each member of the consumer group (as the broker reports them)."""
    desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return [{tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic} for m in desc.members]


def wait_split(admin, group: str, topic: str, procs: list[Proc], timeout: float) -> list[set[int]]:
    """Until the group has two members, each with a non-empty share and together every partition."""
    deadline = time.monotonic() + timeout
    got: list[set[int]] = []
    while time.monotonic() < deadline:
        for p in procs:
            p.alive()
        try:
            got = group_assignment(admin, group, topic)
        except Exception:  # noqa: BLE001 - the group may not exist yet
            got = []
        if len(got) == 2 and all(got) and set().union(*got) == set(range(PARTITIONS)) and not (got[0] & got[1]):
            return got
        time.sleep(0.5)
    raise AssertionError(f"group {group} did not split {topic}: {got}\n"
                         + "\n".join(p.log.read_text()[-1500:] for p in procs))


def test_two_workers_and_two_indexers_split_partitions_and_keep_one_summary_per_call(stack, names, tmp_path):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    from elasticsearch import Elasticsearch

    from producers.cli import _options, file_payloads
    from producers.pipeline import Stats, records_from

    t_start = time.monotonic()
    pcap, plan = tmp_path / "load.pcap", tmp_path / "plan.jsonl"
    subprocess.run([sys.executable, "-m", "sipscope.cli", "loadgen", "--out", str(pcap), "--seed", "1", "--cps", "10",
                    "--duration", "30", "--plan", str(plan), "--quiet"], cwd=ROOT, check=True, timeout=60)
    truth = [json.loads(line) for line in plan.read_text().splitlines()]
    calls = {t["call_id"] for t in truth if t["kind"] == "call"}
    assert len(calls) == len(truth) > 200

    s = Settings(kafka=KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=names.prefix, partitions=PARTITIONS))
    msgs = [r for r in records_from(file_payloads(str(pcap), None, s), _options(s, "test"), Stats())
            if type(r) is SipMessage]
    assert len(msgs) == sum(t["messages"] for t in truth)
    topics.ensure(stack.bootstrap, [topics.name(t, s) for t in topics.ALL], PARTITIONS)
    src, out = topics.name(topics.MESSAGES, s), topics.name(topics.CALLS, s)

    app_id, group_id = f"{names.prefix}app", f"{names.prefix}indexer"
    base = dict(os.environ, SIPSCOPE_KAFKA__BOOTSTRAP=stack.bootstrap, SIPSCOPE_KAFKA__TOPIC_PREFIX=names.prefix,
                SIPSCOPE_KAFKA__PARTITIONS=str(PARTITIONS), SIPSCOPE_ELASTICSEARCH__URL=stack.es_url,
                SIPSCOPE_ELASTICSEARCH__INDEX_PREFIX=names.prefix, SIPSCOPE_LOG_JSON="true",
                SIPSCOPE_METRICS_PORT="0")
    wenv = dict(base, SIPSCOPE_WORKER__APP_ID=app_id, SIPSCOPE_WORKER__IDLE_S="2", SIPSCOPE_WORKER__CLOCK_LAG_S="10",
                SIPSCOPE_WORKER__SESSION_TIMEOUT_S="10", SIPSCOPE_WORKER__COMMIT_INTERVAL_S="1",
                SIPSCOPE_WORKER__PROGRESS_S="2")
    ienv = dict(base, SIPSCOPE_INDEXER__GROUP_ID=group_id, SIPSCOPE_INDEXER__SESSION_TIMEOUT_MS="6000",
                SIPSCOPE_INDEXER__FLUSH_INTERVAL="0.2", SIPSCOPE_INDEXER__SWEEP_INTERVAL="0",
                SIPSCOPE_INDEXER__PROGRESS_INTERVAL="2")
    admin = AdminClient({"bootstrap.servers": stack.bootstrap, "log_level": 0})
    es = Elasticsearch(stack.es_url)
    procs: list[Proc] = []
    reader = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 0})
    finals: Counter = Counter()
    try:
        for i in (1, 2):
            procs.append(Proc(["worker", "--role", "correlate"], wenv, tmp_path / f"worker{i}.log"))
            procs.append(Proc(["index", "--families", "messages,calls"], ienv, tmp_path / f"indexer{i}.log"))
        workers, indexers = procs[0::2], procs[1::2]
        w_split = wait_split(admin, app_id, src, workers, 60)
        i_split = wait_split(admin, group_id, src, indexers, 30)
        t_split = time.monotonic() - t_start

        p = Producer({"bootstrap.servers": stack.bootstrap, "enable.idempotence": True, "acks": "all",
                      "linger.ms": 5, "compression.type": "zstd", "log_level": 0})
        for m in msgs:  # key = Call-ID, as the capture agents' KafkaSink does
            p.produce(src, records.encode(m), m.call_id.encode())
        assert p.flush(30) == 0

        reader.subscribe([out])
        calls_index, msgs_index = f"{names.prefix}sip-calls-*", f"{names.prefix}sip-messages-*"
        n_calls = n_msgs = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for m in reader.consume(1000, 0.3):
                if m.error() is None:
                    rec = records.decode(m.value(), CallSummary)
                    if rec.final:
                        finals[rec.id] += 1
            # 404: no index yet; 503: an index just created, its shard not started yet (poll again)
            poll = es.options(ignore_status=(404, 503))
            poll.indices.refresh(index=f"{names.prefix}sip-*")
            n_calls = poll.count(index=calls_index).get("count", 0)
            n_msgs = poll.count(index=msgs_index).get("count", 0)
            if n_calls >= len(calls) and n_msgs >= len(msgs) and len(finals) >= len(calls):
                break
            for pr in procs:
                pr.alive()
        t_done = time.monotonic() - t_start
        for m in reader.consume(1000, 3):  # anything more would be a second summary of a call
            if m.error() is None:
                rec = records.decode(m.value(), CallSummary)
                if rec.final:
                    finals[rec.id] += 1
        # the split still holds at the end (no member left the groups while the load ran)
        w_end, i_end = group_assignment(admin, app_id, src), group_assignment(admin, group_id, src)
        es.indices.refresh(index=f"{names.prefix}sip-*")
        n_calls = es.count(index=calls_index)["count"]
        n_msgs = es.count(index=msgs_index)["count"]
        docs = es.search(index=calls_index, size=1000, source=["call_id"], query={"match_all": {}})["hits"]["hits"]
    finally:
        for pr in procs:
            pr.stop()
        reader.close()

    worker_msgs = [(pr.events("progress") or [{}])[-1] for pr in workers]
    indexed = [sum(e.get("docs", 0) for e in pr.events("indexer_stopped")) for pr in indexers]
    print(f"\n{len(msgs)} messages of {len(calls)} calls; workers split {PARTITIONS} partitions "
          f"{[sorted(x) for x in w_split]}, indexers {[sorted(x) for x in i_split]} after {t_split:.1f} s; "
          f"all calls in ES after {t_done:.1f} s; indexer docs {indexed}; worker progress {worker_msgs}")
    assert len(w_split) == 2 and all(w_split) and len(i_split) == 2 and all(i_split)
    assert sorted(map(sorted, w_end)) == sorted(map(sorted, w_split)), "a worker lost its partitions during the run"
    assert sorted(map(sorted, i_end)) == sorted(map(sorted, i_split)), "an indexer lost its partitions during the run"
    assert all(n > 0 for n in indexed), f"one indexer indexed nothing: {indexed}"
    # one final summary per call in Kafka, none repeated
    assert len(finals) == len(calls) and sum(finals.values()) == len(calls), finals.most_common(3)
    # Elasticsearch: exactly one summary document per call, every call by its Call-ID, every message once
    assert n_calls == len(calls)
    assert Counter(d["_source"]["call_id"] for d in docs) == Counter({c: 1 for c in calls})
    assert n_msgs == len(msgs)
