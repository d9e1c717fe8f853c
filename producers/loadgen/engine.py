"""The generator: every session stream merged, every message emitted in capture-time order.

::

    gen = Generator(profile)
    for ts, (src_ip, src_port, dst_ip, dst_port, payload) in gen.messages():
        ...

Sessions (calls, registrations, attack probes) start in time order from their streams (merged by start
time); each brings its whole timeline into one heap of pending messages, keyed by ``(ts, sequence)`` so
ties keep a deterministic order. A message is rendered only when it leaves the heap. ``on_session``
sees every session when it starts (the ``--plan`` ground truth is written from there).

Simulated time: nothing here reads the clock. The outputs decide whether to wait for the wall clock
(HEP, SIP) or not (pcap).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterator

from producers.loadgen.attacks import attack_sessions
from producers.loadgen.profile import Profile, validate
from producers.loadgen.session import Session, Wire
from producers.loadgen.topology import Topology
from producers.loadgen.traffic import call_sessions, register_sessions


class Generator:
    """Deterministic traffic for one profile (same profile and seed -> same messages, same order)."""

    def __init__(self, profile: Profile, on_session: Callable[[Session], None] | None = None) -> None:
        self.profile = validate(profile)
        self.topology = Topology(self.profile)
        self.on_session = on_session
        self.sessions = Counter[str]()
        """Sessions started, by kind."""
        self.messages_out = 0

    def session_streams(self) -> list[Iterator[Session]]:
        prof, topo = self.profile, self.topology
        streams: list[Iterator[Session]] = [call_sessions(prof, topo), register_sessions(prof, topo)]
        streams += [attack_sessions(prof, topo, a, i) for i, a in enumerate(prof.attacks)]
        return streams

    def messages(self, limit: int = 0) -> Iterator[tuple[float, Wire]]:
        """``(ts, wire)`` of every message in time order; stops after ``limit`` messages when > 0."""
        starts = heapq.merge(*self.session_streams(), key=_t0)
        nxt = next(starts, None)
        heap: list[tuple[float, int, Session, Callable]] = []
        push, pop = heapq.heappush, heapq.heappop
        seq = 0
        count = 0
        on_session, sessions = self.on_session, self.sessions
        while heap or nxt is not None:
            if nxt is not None and (not heap or nxt.t0 <= heap[0][0]):
                for ts, build in nxt.timeline:
                    push(heap, (ts, seq, nxt, build))
                    seq += 1
                sessions[nxt.kind] += 1
                if on_session is not None:
                    on_session(nxt)
                nxt = next(starts, None)
                continue
            ts, _, session, build = pop(heap)
            count += 1
            self.messages_out = count
            yield ts, build(session)
            if count == limit:
                return


def _t0(session: Session) -> float:
    return session.t0
