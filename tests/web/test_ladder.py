"""Ladder layout: columns in order of appearance, one arrow per message, retransmissions marked; charts."""

from __future__ import annotations

from indexers.web import charts, ladder
from indexers.web.ladder import Msg


def m(i, ts, src, dst, label, raw=None, call="c1", node="n1"):
    return Msg(id=f"m{i}", ts=ts, src=src, dst=dst, call_id=call, label=label, node=node, raw=raw or f"{label} {i}")


A, B, C = "10.0.0.1:5060", "10.0.0.2:5080", "[2001:db8::1]:5060"


def test_hosts_are_columns_in_order_of_appearance_and_each_message_an_arrow():
    msgs = [m(0, 1.0, A, B, "INVITE"), m(1, 1.1, B, C, "INVITE"), m(2, 1.2, C, B, "180 Ringing"),
            m(3, 1.3, B, A, "180 Ringing")]
    lad = ladder.layout(list(reversed(msgs)))  # input order does not matter: time does
    assert [c.host for c in lad.columns] == [A, B, C]
    assert [a.label for a in lad.arrows] == ["INVITE", "INVITE", "180 Ringing", "180 Ringing"]
    x = {c.host: c.x for c in lad.columns}
    assert (lad.arrows[0].x1, lad.arrows[0].x2) == (x[A], x[B])
    assert (lad.arrows[3].x1, lad.arrows[3].x2) == (x[B], x[A])
    assert [a.y for a in lad.arrows] == sorted(a.y for a in lad.arrows)
    assert lad.arrows[2].delta == "+0.200s" and lad.arrows[0].time == "00:00:01.000"
    assert lad.width > x[C] and lad.height > lad.arrows[-1].y


def test_retransmissions_and_duplicate_captures_are_marked():
    inv = "INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n"
    msgs = [m(0, 10.0, A, B, "INVITE", inv), m(1, 10.5, A, B, "INVITE", inv),  # timer A: sent again
            m(2, 10.51, A, B, "INVITE", inv, node="n2"),  # the same packet from a second capture point
            m(3, 11.0, B, A, "100 Trying")]
    lad = ladder.layout(msgs)
    assert [a.kind for a in lad.arrows] == ["new", "retransmission", "duplicate", "new"]
    assert [a.marked for a in lad.arrows] == [False, True, True, False]


def test_legs_get_their_own_colour_and_a_message_to_itself_is_a_loop():
    lad = ladder.layout([m(0, 1, A, B, "INVITE", call="leg-a"), m(1, 2, B, B, "INFO", call="leg-b")])
    assert [cid for cid, _ in lad.legs] == ["leg-a", "leg-b"]
    assert lad.arrows[0].color != lad.arrows[1].color
    assert lad.arrows[1].loop and lad.arrows[1].x2 > lad.arrows[1].x1


def test_labels_and_hosts():
    assert ladder.label_of("INVITE", None, None) == "INVITE"
    assert ladder.label_of(None, 486, "Busy Here", "INVITE") == "486 Busy Here (INVITE)"
    assert len(ladder.label_of(None, 500, "x" * 100)) == ladder.LABEL_MAX
    assert ladder.host("2001:db8::1", 5060) == "[2001:db8::1]:5060" and ladder.host("10.0.0.1", 5) == "10.0.0.1:5"


def test_empty_ladder():
    lad = ladder.layout([])
    assert lad.columns == [] and lad.arrows == [] and lad.width > 0


def test_chart_lines_break_on_missing_buckets_and_scale_percentages_to_100():
    ch = charts.chart("ASR", "%", [("lab-a", [(0, 50.0), (60, 100.0), (120, None), (180, 25.0)])], 0, 180, percent=True)
    (line,) = ch.lines
    assert len(line.paths) == 1 and len(line.dots) == 1  # 2 points joined, then a lone point after the gap
    x0, y0, x1, _y1 = ch.plot
    assert line.paths[0].split()[1] == f"{x0 + (x1 - x0) / 3:.1f},{y0:.1f}"  # 100 % at the top
    assert ch.yticks[-1][1] == "100" and not ch.empty
    assert charts.chart("CPS", "", [("k", [(0, None)])], 0, 60).empty
    assert [charts.nice_max(v) for v in (0, 0.3, 7, 12, 480)] == [1.0, 0.5, 10, 20, 500]
