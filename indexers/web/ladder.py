"""Layout of the ladder (sequence) diagram of a call: pure geometry, rendered as SVG by the template.

* Columns are the hosts (``ip:port``, as in ``CallSummary.hosts``) in order of first appearance.
* Rows are the messages in capture order: one arrow each, from its sender's column to its receiver's,
  labelled with the method or status, with its time on the left (UTC and offset from the first message).
* Each leg (Call-ID) has its own colour; retransmissions and duplicate captures (classified with the
  correlator's own rule, :func:`streams.observations.classify`) are drawn dashed and marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from streams.observations import DUPLICATE, RETRANSMISSION, classify, payload_hash

COLORS = ("#1f5fbf", "#b5461b", "#2e7d32", "#7b3fa0", "#00838f", "#8d6e00")
GUTTER = 130
"""Width of the time column on the left."""
COL_W = 190
HEAD_H = 56
ROW_H = 34
MARGIN = 16
LABEL_MAX = 30


@dataclass(frozen=True)
class Msg:
    """What the ladder needs of one indexed message."""

    id: str
    ts: float
    src: str
    dst: str
    call_id: str
    label: str
    node: str = ""
    raw: str = ""


@dataclass(frozen=True)
class Column:
    host: str
    x: float


@dataclass(frozen=True)
class Arrow:
    index: int
    msg_id: str
    x1: float
    x2: float
    y: float
    label: str
    time: str
    delta: str
    leg: int
    color: str
    kind: str
    """``new``, ``retransmission`` or ``duplicate``."""
    head: str
    """SVG points of the arrow head."""
    loop: bool = False
    """Sender and receiver are the same column (drawn as a loop)."""

    @property
    def marked(self) -> bool:
        return self.kind != "new"


@dataclass(frozen=True)
class Ladder:
    columns: list[Column]
    arrows: list[Arrow]
    legs: list[tuple[str, str]]
    """(Call-ID, colour) in order of appearance."""
    width: float
    height: float
    top: float
    bottom: float


def host(ip: str, port: int | None) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def label_of(method: str | None, status: int | None, reason: str | None, cseq_method: str | None = None) -> str:
    if method:
        text = method
    else:
        text = f"{status} {reason or ''}".strip()
        if cseq_method:
            text += f" ({cseq_method})"
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def _head(x1: float, x2: float, y: float) -> str:
    d = 8 if x2 >= x1 else -8
    return f"{x2:.1f},{y:.1f} {x2 - d:.1f},{y - 4:.1f} {x2 - d:.1f},{y + 4:.1f}"


def kinds(msgs: list[Msg], window_s: float = 0.5, same_node_window_s: float = 0.05) -> list[str]:
    """``new`` / ``retransmission`` / ``duplicate`` per message (in time order), per Call-ID."""
    seen: dict[str, dict[int, list]] = {}
    out = []
    for m in msgs:
        c = classify(seen.setdefault(m.call_id, {}), payload_hash(m.raw), m.ts, m.node, window_s, same_node_window_s)
        out.append("retransmission" if c == RETRANSMISSION else "duplicate" if c == DUPLICATE else "new")
    return out


def layout(msgs: list[Msg], window_s: float = 0.5, same_node_window_s: float = 0.05) -> Ladder:
    """The ladder of ``msgs`` (sorted by time here; equal times keep their order)."""
    msgs = sorted(msgs, key=lambda m: m.ts)
    order: dict[str, int] = {}
    legs: dict[str, int] = {}
    for m in msgs:
        order.setdefault(m.src, len(order))
        order.setdefault(m.dst, len(order))
        legs.setdefault(m.call_id, len(legs))
    xs = {h: GUTTER + MARGIN + i * COL_W + COL_W / 2 for h, i in order.items()}
    columns = [Column(h, xs[h]) for h in order]
    t0 = msgs[0].ts if msgs else 0.0
    arrows = []
    for i, (m, kind) in enumerate(zip(msgs, kinds(msgs, window_s, same_node_window_s), strict=True)):
        y = HEAD_H + MARGIN + i * ROW_H + ROW_H / 2
        x1, x2 = xs[m.src], xs[m.dst]
        leg = legs[m.call_id]
        loop = m.src == m.dst
        if loop:
            x2 = x1 + COL_W * 0.35
        arrows.append(Arrow(
            index=i, msg_id=m.id, x1=x1, x2=x2, y=y, label=m.label, time=_clock(m.ts), delta=f"+{m.ts - t0:.3f}s",
            leg=leg, color=COLORS[leg % len(COLORS)], kind=kind,
            head=_head(x2, x1, y + 8) if loop else _head(x1, x2, y), loop=loop,
        ))
    width = GUTTER + 2 * MARGIN + max(len(order), 1) * COL_W
    bottom = HEAD_H + MARGIN + len(msgs) * ROW_H
    return Ladder(columns=columns, arrows=arrows,
                  legs=[(cid, COLORS[i % len(COLORS)]) for cid, i in legs.items()],
                  width=width, height=bottom + MARGIN, top=HEAD_H - 6, bottom=bottom)
