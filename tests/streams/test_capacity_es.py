"""``sipscope capacity --from-es``: the indexed ``sip-calls`` give the same numbers as the capture they came from.

Real Elasticsearch (the ``stack`` fixture): call summaries of a loadgen capture are indexed the way the
indexer writes them (``indexers.documents.action`` into the daily indices under the test's prefix), then read
back by the capacity source's scroll over the days of ``--last 1d``.
"""

from __future__ import annotations

import json
import math
import time

import pytest
from elasticsearch.helpers import bulk

from indexers import layout
from indexers.documents import action
from indexers.es import client
from indexers.families import CALLS
from producers.loadgen import Generator, PcapOutput, Profile, pump
from producers.loadgen.profile import trunk_map
from sipscope import records
from sipscope.settings import ElasticsearchSettings, Settings, get_settings
from streams.analyze import analyze_file
from streams.capacity import ALL, CallTimes, plan_capacity
from streams.capacity_cli import main as capacity_main
from streams.capacity_sources import calls_from_es

pytestmark = pytest.mark.stack


@pytest.fixture
def indexed(stack, names, tmp_path):
    settings = Settings(elasticsearch=ElasticsearchSettings(url=stack.es_url, index_prefix=names.prefix))
    start = math.floor(time.time() / 60) * 60 - 3 * 3600  # three hours ago: inside --last 1d, not in the future
    prof = Profile(seed=9, cps=0.5, duration=1800, start=start)
    pcap = tmp_path / "calls.pcap"
    with pcap.open("wb") as f:
        out = PcapOutput(f)
        pump(Generator(prof).messages(), out)
        out.close()
    summaries = analyze_file(str(pcap), Settings(correlation={"trunks": trunk_map(prof)}), extra_engines=[]).calls
    es = client(settings)
    layout.setup(es, settings, ["calls"])
    ok, errors = bulk(es, (action(c, records.encode(c), CALLS, names.prefix) for c in summaries), refresh=True)
    assert ok == len(summaries) and not errors
    yield settings, es, summaries
    es.close()


def test_indexed_calls_give_the_capture_numbers(indexed):
    settings, es, summaries = indexed
    from_es = list(calls_from_es(es, settings, last="1d", page=200))
    assert len(from_es) == len(summaries)
    got = sorted(from_es, key=lambda c: c.start)
    want = sorted((CallTimes.of(c) for c in summaries), key=lambda c: c.start)
    for g, w in zip(got, want, strict=True):
        assert (g.src_ip, g.dst_ip, g.src_trunk, g.dst_trunk) == (w.src_ip, w.dst_ip, w.src_trunk, w.dst_trunk)
        for f in ("start", "end", "answer", "bye", "final", "duration"):
            assert getattr(g, f) == pytest.approx(getattr(w, f), abs=2e-6), f
    a = {r.key: r for r in plan_capacity(from_es)}
    b = {r.key: r for r in plan_capacity([CallTimes.of(c) for c in summaries])}
    assert set(a) == {ALL, "carrier-a", "carrier-b", "mobile-c"}
    for key, row in a.items():
        assert (row.busy_hour.start, row.peak_concurrent, row.circuits) == \
               (b[key].busy_hour.start, b[key].peak_concurrent, b[key].circuits)
        assert row.erlangs == pytest.approx(b[key].erlangs, rel=1e-6)


def test_command_from_es(indexed, monkeypatch, capsys):
    settings, _es, summaries = indexed
    monkeypatch.setenv("SIPSCOPE_ELASTICSEARCH__INDEX_PREFIX", settings.elasticsearch.index_prefix)
    monkeypatch.setenv("SIPSCOPE_ELASTICSEARCH__URL", settings.elasticsearch.url)
    get_settings.cache_clear()
    try:
        assert capacity_main(["--from-es", "--last", "1d", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert rows[0]["trunk"] == ALL and rows[0]["calls"] == len(summaries)
        assert capacity_main(["--from-es", "--from", "2020-01-01T00:00:00", "--to", "2020-01-02T00:00:00"]) == 1
        assert "retention" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
