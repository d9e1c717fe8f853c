"""B2BUA leg correlation (header and heuristic) and the trunk alias map."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sipbuild import A, B, Leg, P

from sipscope.settings import CorrelationSettings
from streams.dialogs import CallTracker
from streams.legs import LegLinker
from streams.trunks import TrunkMap

T0 = 2000.0


def legs_of(msgs, cfg=None):
    tr = CallTracker(cfg or CorrelationSettings())
    out = []
    for m in sorted(msgs, key=lambda m: m.ts):
        out += tr.feed(m)
    out += tr.flush_all()
    return {s.call_id: s for s in out}


def test_header_correlation_id_links_both_legs():
    # FreeSWITCH puts the A-leg Call-ID in the B-leg's X-CID (the parser fills correlation_id)
    a = Leg("a-leg@x", caller=A, callee=P, from_user="11100", to_user="service")
    b = Leg("b-leg@x", caller=P, callee=B, from_user="+351913417084", to_user="22200")
    got = legs_of([a.invite(T0), b.invite(T0 + 0.004, correlation_id="a-leg@x")])
    assert got["a-leg@x"].correlation_id == "a-leg@x"
    assert got["b-leg@x"].correlation_id == "a-leg@x"


def test_opaque_header_value_is_shared_as_is():
    a = Leg("a@x", caller=A, callee=P)
    b = Leg("b@x", caller=P, callee=B)
    got = legs_of([a.invite(T0, correlation_id="icid-77"), b.invite(T0 + 0.01, correlation_id="icid-77")])
    assert {s.correlation_id for s in got.values()} == {"icid-77"}


def test_heuristic_links_a_b2bua_leg_by_caller_and_host():
    # Asterisk: A-leg telephone1 -> 2302, B-leg telephone1 -> telephone2 from the PBX 3.6 ms later
    a = Leg("a@x", caller=A, callee=P, from_user="telephone1", to_user="2302")
    b = Leg("b@x", caller=P, callee=B, from_user="telephone1", to_user="telephone2")
    got = legs_of([a.invite(T0), b.invite(T0 + 0.0036)])
    assert got["a@x"].correlation_id == got["b@x"].correlation_id == "a@x"


def test_heuristic_uses_pai_and_ruri_numbers():
    a = Leg("a@x", caller=A, callee=P, from_user="11100", to_user="service", ruri_user="22200")
    b = Leg("b@x", caller=P, callee=B, from_user="351913417084", to_user="22200")
    got = legs_of([a.invite(T0, pai_user="+351913417084", pai_user_e164="351913417084"), b.invite(T0 + 0.5)])
    assert got["b@x"].correlation_id == "a@x"


@pytest.mark.parametrize("why", ["other_host", "too_late", "no_common_number", "before"])
def test_heuristic_does_not_link(why):
    a = Leg("a@x", caller=A, callee=P, from_user="1001", to_user="2002")
    src = ("10.9.9.9", 5060) if why == "other_host" else P
    users = ("3003", "4004") if why == "no_common_number" else ("1001", "2002")
    b = Leg("b@x", caller=src, callee=B, from_user=users[0], to_user=users[1])
    dt = {"too_late": 2.5, "before": -0.1}.get(why, 0.2)
    got = legs_of([a.invite(T0), b.invite(T0 + dt)])
    assert got["a@x"].correlation_id is None and got["b@x"].correlation_id is None


def test_heuristic_prefers_the_candidate_matching_both_numbers():
    a1 = Leg("a1@x", caller=A, callee=P, from_user="1001", to_user="2002")
    a2 = Leg("a2@x", caller=A, callee=P, from_user="1001", to_user="2999")
    b = Leg("b@x", caller=P, callee=B, from_user="1001", to_user="2002")
    got = legs_of([a1.invite(T0), a2.invite(T0 + 0.1), b.invite(T0 + 0.2)])
    assert got["b@x"].correlation_id == "a1@x"
    assert got["a2@x"].correlation_id is None


def test_chain_of_b2buas_shares_the_first_leg_id():
    a = Leg("a@x", caller=A, callee=P, from_user="1001", to_user="2002")
    b = Leg("b@x", caller=P, callee=B, from_user="1001", to_user="2002")
    c = Leg("c@x", caller=B, callee=("10.0.0.3", 5060), from_user="1001", to_user="2002")
    got = legs_of([a.invite(T0), b.invite(T0 + 0.1), c.invite(T0 + 0.2)])
    assert {s.correlation_id for s in got.values()} == {"a@x"}


def test_anonymous_callers_never_match():
    a = Leg("a@x", caller=A, callee=P, from_user="anonymous", to_user="2002")
    b = Leg("b@x", caller=P, callee=B, from_user="anonymous", to_user="2999")
    got = legs_of([a.invite(T0), b.invite(T0 + 0.1)])
    assert got["b@x"].correlation_id is None


def test_heuristic_can_be_disabled():
    a = Leg("a@x", caller=A, callee=P, from_user="1001", to_user="2002")
    b = Leg("b@x", caller=P, callee=B, from_user="1001", to_user="2002")
    got = legs_of([a.invite(T0), b.invite(T0 + 0.1)], CorrelationSettings(leg_link_window_s=0))
    assert got["b@x"].correlation_id is None


# -- trunks -----------------------------------------------------------------------------------------------

def test_trunk_map_longest_prefix_and_ipv6():
    tm = TrunkMap({"10.0.0.0/8": "corp", "10.0.0.0/24": "lab", "192.0.2.7": "carrier-x", "2001:db8::/32": "v6"})
    assert tm.lookup("10.0.0.9") == "lab"
    assert tm.lookup("10.1.2.3") == "corp"
    assert tm.lookup("192.0.2.7") == "carrier-x" and tm.lookup("192.0.2.8") is None
    assert tm.lookup("2001:db8::1") == "v6"
    assert tm.lookup("not-an-ip") is None and tm.lookup(None) is None
    assert tm.lookup("10.0.0.9") == "lab"  # cached path


def test_trunk_map_rejects_bad_entries():
    with pytest.raises(ValueError, match="correlation.trunks"):
        TrunkMap({"10.0.0.0/33": "x"})


def test_summary_carries_trunk_names():
    leg = Leg()
    got = legs_of([leg.invite(T0)], CorrelationSettings(trunks={"10.0.0.1/32": "pbx-a", "10.0.0.0/29": "carrier-b"}))
    s = got[leg.call_id]
    assert (s.src_trunk, s.dst_trunk) == ("pbx-a", "carrier-b")


class _Leg:
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.correlation_id = None


def _full_scan(history: list, ts: float, src: str, callers: frozenset, callees: frozenset, window: float):
    """The rule of LegLinker.link by brute force: among earlier legs sent to ``src`` within the window that
    share a number, the highest score (2 per shared caller, 2 per shared callee side), then the newest."""
    best, best_key = None, (0, -1)
    for seq, (t, cid, dst, cs, ce) in enumerate(history):
        if dst != src or not (0 <= ts - t <= window):
            continue
        score = (2 if callers & cs else 0) + (2 if callees & ce else 0)
        if score and (score, seq) > best_key:
            best, best_key = cid, (score, seq)
    return best


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.9), st.sampled_from(["h1", "h2"]), st.sampled_from(["h1", "h2"]),
                          st.frozensets(st.sampled_from(["100", "200", "300"]), max_size=2),
                          st.frozensets(st.sampled_from(["100", "400", "500"]), max_size=2)), max_size=40))
def test_linker_picks_what_a_full_scan_picks(events):
    """The newest-first scan with its early stop returns what looking at every candidate returns."""
    linker = LegLinker(2.0)
    history, ts = [], 1000.0
    for i, (gap, src, dst, callers, callees) in enumerate(events):
        ts += gap
        want = _full_scan(history, ts, src, callers, callees, 2.0)
        got = linker.link(_Leg(f"c{i}"), ts, src, dst, callers, callees)
        assert (got.call_id if got is not None else None) == want
        history.append((ts, f"c{i}", dst, callers, callees))
