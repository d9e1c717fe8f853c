"""`sipscope setup` on the real Elasticsearch (idempotent, prefixed, strict mappings) and the retention sweeper."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta

import pytest
from ixhelpers import IndexerThread, make_settings

from indexers import layout, retention
from indexers.es import client
from indexers.families import FAMILIES

pytestmark = pytest.mark.stack


def test_setup_is_idempotent_and_installs_every_template(isettings):
    es = client(isettings)
    first = layout.setup(es, isettings)
    second = layout.setup(es, isettings)
    assert first.templates == second.templates == [f"{isettings.elasticsearch.index_prefix}{f.base}" for f in FAMILIES.values()]
    got = es.indices.get_index_template(name=f"{isettings.elasticsearch.index_prefix}sip-*")["index_templates"]
    assert len(got) == 5
    for t in got:
        assert t["index_template"]["index_patterns"] == [f"{t['name']}-*"]
        assert t["index_template"]["template"]["mappings"]["dynamic"] == "strict"
    ilm, _ = layout.ilm_status(es)
    assert first.ilm == ilm
    if not ilm:  # the minimal distribution: no lifecycle settings (Elasticsearch would refuse them), sweeper instead
        assert all("lifecycle" not in t["index_template"]["template"]["settings"].get("index", {}) for t in got)
        assert "retention sweeper" in " ".join(first.lines(5))


def test_new_daily_index_gets_the_mapping_and_setup_updates_existing_ones(isettings):
    es = client(isettings)
    layout.setup(es, isettings, ["messages"])
    name = f"{isettings.elasticsearch.index_prefix}sip-messages-2026.11.20"
    es.indices.create(index=name)
    mapping = es.indices.get_mapping(index=name)[name]["mappings"]
    assert mapping["properties"]["ts"]["type"] == "date_nanos"
    assert mapping["properties"]["src_ip"]["type"] == "ip"
    assert mapping["properties"]["from_user_e164_rev"]["type"] == "keyword"
    report = layout.setup(es, isettings, ["messages"])
    assert report.updated == [f"{isettings.elasticsearch.index_prefix}sip-messages-*"] and not report.warnings


def _env(settings) -> dict:
    env = dict(os.environ)
    env.update({"SIPSCOPE_ELASTICSEARCH__URL": settings.elasticsearch.url,
                "SIPSCOPE_ELASTICSEARCH__INDEX_PREFIX": settings.elasticsearch.index_prefix,
                "SIPSCOPE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
                "SIPSCOPE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap})
    return env


def test_setup_command_says_what_it_did(isettings):
    out = subprocess.run([sys.executable, "-m", "sipscope.cli", "setup"], check=False, env=_env(isettings), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("index template") == 5
    assert "ILM" in out.stdout


def test_setup_against_a_dead_cluster_is_one_clear_error(isettings):
    env = _env(isettings) | {"SIPSCOPE_ELASTICSEARCH__URL": "http://127.0.0.1:1"}
    out = subprocess.run([sys.executable, "-m", "sipscope.cli", "setup"], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "unreachable" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_expiry_rule():
    now = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    assert retention.expired(date(2026, 11, 20), now, 5)
    assert retention.expired(date(2026, 11, 21), now, 5)  # 5 days after its day began
    assert not retention.expired(date(2026, 11, 22), now, 5)
    assert not retention.expired(date(2026, 11, 26), now, 5)
    assert retention.parse_daily("p-sip-calls-2026.11.21", "p-").family == "calls"
    assert retention.parse_daily("p-sip-calls-2026.13.21", "p-") is None
    assert retention.parse_daily("q-sip-calls-2026.11.21", "p-") is None
    assert retention.parse_daily("p-sip-calls-2026.11.21-restored", "p-") is None


def test_sweeper_removes_six_day_old_indices_and_keeps_four_day_old_ones(isettings):
    es = client(isettings)
    prefix = isettings.elasticsearch.index_prefix
    layout.setup(es, isettings)
    today = datetime.now(UTC).date()
    day = lambda n: (today - timedelta(days=n)).strftime("%Y.%m.%d")
    old = [f"{prefix}sip-messages-{day(6)}", f"{prefix}sip-calls-{day(6)}", f"{prefix}sip-alerts-{day(7)}"]
    kept = [f"{prefix}sip-messages-{day(4)}", f"{prefix}sip-stats-{day(4)}", f"{prefix}sip-messages-{day(0)}",
            f"{prefix}sip-messages-archive", f"{prefix}other-{day(9)}"]
    for name in old + kept:
        es.indices.create(index=name)
    # dry run first: nothing deleted
    now = datetime.combine(today, time(12), tzinfo=UTC)
    assert sorted(retention.enforce(es, prefix, 5, now=now, dry_run=True)) == sorted(old)
    assert all(es.indices.exists(index=n) for n in old)
    # the command (same rule, prefix from the environment)
    out = subprocess.run([sys.executable, "-m", "sipscope.cli", "retention", "enforce"], check=False, env=_env(isettings),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "deleted 3 daily index(es)" in out.stdout
    assert not any(es.indices.exists(index=n) for n in old)
    assert all(es.indices.exists(index=n) for n in kept)
    assert retention.enforce(es, prefix, 5, now=now) == []  # idempotent


def test_the_indexer_sweeps_on_its_schedule(stack, names, tmp_path):
    settings = make_settings(stack, names.prefix, tmp_path, sweep_interval=0.5)
    es = client(settings)
    layout.setup(es, settings)
    today = datetime.now(UTC).date()
    old = f"{names.prefix}sip-messages-{(today - timedelta(days=6)):%Y.%m.%d}"
    young = f"{names.prefix}sip-messages-{(today - timedelta(days=4)):%Y.%m.%d}"
    es.indices.create(index=old)
    es.indices.create(index=young)
    ix = IndexerThread(settings, exit_when_idle=1.0).start()
    ix.join(60)
    assert not es.indices.exists(index=old) and es.indices.exists(index=young)
