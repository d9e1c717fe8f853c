"""Record -> document/action, and the rejections of records that cannot become one (no I/O)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexers import documents
from indexers.documents import BadRecord
from indexers.families import FAMILIES
from sipscope import records
from sipscope.records import CallSummary, SipMessage

MESSAGES = FAMILIES["messages"]


def _msg(**kw) -> SipMessage:
    base = {"id": "abc", "ts": 1312180650.454022, "src_ip": "10.33.6.101", "src_port": 5060, "dst_ip": "10.33.6.102",
            "dst_port": 5060, "transport": "udp", "is_request": True, "method": "INVITE", "call_id": "c1",
            "cseq_num": 1, "cseq_method": "INVITE", "from_user": "0289707501", "from_user_e164": "61289707501",
            "raw": "INVITE ..."}
    base.update(kw)
    return SipMessage(**base)


def test_daily_index_is_named_by_event_time_not_wall_clock():
    rec = _msg()
    act = documents.action(rec, records.encode(rec), MESSAGES, "p-")
    assert act["_index"] == "p-sip-messages-2011.08.01"
    assert act["_op_type"] == "index" and act["_id"] == "abc"


def test_times_become_iso_utc_with_microseconds_and_numbers_get_reversed_digits():
    _, doc = documents.to_document(_msg(), MESSAGES)
    assert doc["ts"] == "2011-08-01T06:37:30.454022Z"
    assert doc["from_user_e164_rev"] == "10570798216"
    assert "to_user_e164_rev" not in doc  # no number, no derived field
    assert doc["raw"] == "INVITE ..." and doc["v"] == records.SIP_MESSAGE_VERSION


def test_day_boundaries_are_utc():
    assert documents.day_of(1764201599.999999) == "2025.11.26"
    assert documents.day_of(1764201600.0) == "2025.11.27"


def test_call_summary_times_all_converted_and_index_by_start():
    rec = CallSummary(id="k", call_id="c", outcome="answered", start_ts=1764201599.5, end_ts=1764201660.0,
                      answer_ts=1764201610.0, caller="+61289707501", caller_e164="61289707501")
    act = documents.action(rec, records.encode(rec), FAMILIES["calls"], "")
    assert act["_index"] == "sip-calls-2025.11.26"  # the day the call started, though it ended the next day
    src = act["_source"]
    assert src["end_ts"] == "2025-11-27T00:01:00.000000Z" and src["answer_ts"].startswith("2025-11-27T00:00:10")
    assert src["caller_e164_rev"] == "10570798216"


def test_missing_id_gets_a_stable_hash_of_the_bytes():
    rec = _msg(id="")
    value = records.encode(rec)
    a = documents.action(rec, value, MESSAGES, "")["_id"]
    assert a == documents.action(records.decode(value, SipMessage), value, MESSAGES, "")["_id"] and len(a) == 32


@pytest.mark.parametrize("value,reason", [
    (b"not json at all", "bad_record"),
    (b"[1,2,3]", "bad_record"),
    (b'{"v":1,"ts":1.0}', "bad_record"),
    (records.encode(_msg()).replace(b'"v":1', b'"v":99'), "unsupported_schema_version"),
    (b"", "bad_record"),
    (None, "bad_record"),
])
def test_undecodable_records_get_a_stable_reason(value, reason):
    with pytest.raises(BadRecord) as exc:
        documents.decode(value, MESSAGES)
    assert exc.value.reason == reason


def test_a_time_that_is_no_date_is_a_bad_timestamp():
    with pytest.raises(BadRecord) as exc:
        documents.to_document(_msg(ts=1e300), MESSAGES)
    assert exc.value.reason == "bad_timestamp"


def test_far_future_event_times_are_refused_past_the_limit():
    now = 1_764_000_000.0
    documents.check_time(_msg(ts=now + 3600), MESSAGES, now, 86400)  # an hour ahead: a clock a little off
    with pytest.raises(BadRecord) as exc:
        documents.check_time(_msg(ts=3867576602.25), MESSAGES, now, 86400)  # 2092, as in call-ipv6-udp.pcap
    assert exc.value.reason == "ts_in_future" and "2092-07-22" in str(exc.value)
    documents.check_time(_msg(ts=3867576602.25), MESSAGES, now, 0)  # 0 = no limit


def test_rejected_record_keeps_the_bytes_and_the_context():
    rec = _msg()
    value = records.encode(rec)
    rej = documents.rejected(value, "es_mapping_error", "400 document_parsing_exception", rec, MESSAGES, "node-9")
    assert rej.stage == "indexer" and rej.reason == "es_mapping_error"
    assert base64.b64decode(rej.raw_b64) == value
    assert rej.ts == rec.ts and rej.src_ip == "10.33.6.101" and rej.node == "node-9"
    assert msgspec.json.decode(records.encode(rej))["v"] == records.REJECTED_VERSION
    bare = documents.rejected(b"\xff\x00", "bad_record", "x", None, MESSAGES)
    assert bare.ts is None and base64.b64decode(bare.raw_b64) == b"\xff\x00"


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.floats(min_value=-1e10, max_value=2.5e11, allow_nan=False),
                 st.integers(min_value=1_700_000_000_000_000, max_value=1_900_000_000_000_000).map(lambda us: us / 1e6),
                 st.integers(min_value=0, max_value=10**7).map(lambda k: 1_795_750_000 + k / 1e6 + 5e-7)))
def test_iso_writes_what_datetime_writes(ts):
    # the per-second cache and the half-even microseconds give exactly datetime's text (ties included)
    assert documents.iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
