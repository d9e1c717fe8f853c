"""What every generated session (a call, a REGISTER chain, a probe) gives the engine.

A session knows its whole timeline when it is created: ``timeline`` is a list of ``(ts, builder)`` in
time order, where ``builder(session)`` renders one message as a :data:`Wire` tuple. Messages are
rendered only when their time comes (a long call does not keep its BYE in memory as text), and the
session's few strings (tags, Call-ID, header lines) are built once and shared by all its messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Wire = tuple[str, int, str, int, bytes]
"""``(src_ip, src_port, dst_ip, dst_port, payload)`` of one UDP datagram carrying one SIP message."""

Builder = Callable[[Any], Wire]


class Session:
    """Base of the generated sessions: a timeline plus the ground truth of what was generated."""

    __slots__ = ("kind", "t0", "timeline")

    def __init__(self, t0: float, kind: str) -> None:
        self.t0 = t0
        self.kind = kind
        """``call``, ``register`` or the attack name (``scan``, ``bruteforce``, ``flood``, ``wangiri``)."""
        self.timeline: list[tuple[float, Builder]] = []

    def plan(self) -> dict[str, Any]:
        """The ground truth of this session (one JSON line of ``--plan``)."""
        raise NotImplementedError

