"""Linking the legs of one call through a B2BUA/SBC (each leg has its own Call-ID).

Order of preference for a leg's ``correlation_id``:

1. The message's ``correlation_id`` (HEP correlation chunk, or the first configured header such as
   ``X-CID``, P-Charging-Vector ``icid-value``, Session-ID, already extracted by the parser). When that
   value is the Call-ID of another open leg, that leg gets its own Call-ID as correlation id, so both
   legs carry the same value (FreeSWITCH puts the A-leg Call-ID in the B-leg's ``X-CID``).
2. The heuristic below, for legs with no such id.

Heuristic: a new leg B (initial INVITE from host H at time t) belongs to the same call as an earlier
leg A when

* A's first INVITE was sent *to* H (the B2BUA receives leg A and originates leg B from the same host),
* ``0 <= t - A.start <= leg_link_window_s`` (2 s by default),
* A and B share a caller number (From or P-Asserted-Identity user, E.164 when known) or a callee number
  (To or Request-URI user); a B2BUA often rewrites one of the two (Asterisk maps extension ``2302`` to
  endpoint ``telephone2``; an SBC rewrites From to the PAI number), rarely both.

Among several candidates the one matching both numbers wins, then the most recent. B gets
``A.correlation_id or A.call_id`` (so chains of B2BUAs share one id, the first leg's Call-ID), and A gets
its own Call-ID when it had none. Anonymous users never match.

The candidate index lives in memory only and covers ``leg_link_window_s``: in a partitioned worker it
links legs that reach the same partition; the header-based path (1) has no such limit. It is keyed by
(destination host, caller or callee number), so a new leg looks only at the legs that share one of its
numbers, not at every INVITE its host received in the window (at carrier rates, thousands).
"""

from __future__ import annotations

from collections import deque
from typing import Any

_ANONYMOUS = frozenset({"anonymous", "unknown", "restricted", "unavailable", "private", "anonymous.invalid"})


_NOT_ANONYMOUS_START = frozenset("0123456789+")
"""A value starting with one of these is a number, never one of ``_ANONYMOUS`` (all start with a letter):
the common case skips building its lower-case copy."""


def numbers(a: str | None, b: str | None) -> frozenset[str]:
    """The set of usable numbers/users among ``a`` and ``b`` (None, empty and anonymous ones dropped)."""
    if a and (a[0] in _NOT_ANONYMOUS_START or a.lower() not in _ANONYMOUS):
        if b and (b[0] in _NOT_ANONYMOUS_START or b.lower() not in _ANONYMOUS):
            return frozenset((a, b))
        return frozenset((a,))
    return frozenset((b,)) if b and (b[0] in _NOT_ANONYMOUS_START or b.lower() not in _ANONYMOUS) else _NONE


_NONE: frozenset[str] = frozenset()


class _Candidate:
    __slots__ = ("ts", "seq", "call_id", "callers", "callees", "state")

    def __init__(self, ts: float, seq: int, call_id: str, callers: frozenset[str], callees: frozenset[str],
                 state: Any):
        self.ts = ts
        self.seq = seq
        self.call_id = call_id
        self.callers = callers
        self.callees = callees
        self.state = state


class LegLinker:
    """Index of recent first INVITEs by destination host and number; see the module docstring."""

    __slots__ = ("window", "_index", "_order", "_seq")

    def __init__(self, window: float) -> None:
        self.window = window
        self._index: dict[tuple[str, bool, str], deque[_Candidate]] = {}
        """(host the INVITE went to, True for a caller number / False for a callee number, number) ->
        candidates in arrival order."""
        self._order: deque[tuple[float, list[tuple[str, bool, str]]]] = deque()
        self._seq = 0

    def link(self, state: Any, ts: float, src_ip: str, dst_ip: str,
             callers: frozenset[str], callees: frozenset[str]) -> Any | None:
        """Register leg ``state`` (an object with ``call_id`` and ``correlation_id``) and return the
        earlier leg's state it belongs to, or None. Does not modify either state.

        The earlier leg scoring most (2 for a shared caller number, 2 for a shared callee number) wins; among
        equals the most recent one."""
        if self.window <= 0:
            return None
        self._expire(ts)
        index, window, call_id = self._index, self.window, state.call_id
        best: _Candidate | None = None
        best_key = (0, -1)
        # One pass over the numbers both looks up the candidates (sent to src_ip) and builds this leg's own
        # keys (sent to dst_ip): no comprehension frames, no list concatenation.
        keys: list[tuple[str, bool, str]] = []
        for is_caller, nums in ((True, callers), (False, callees)):
            for n in nums:
                keys.append((dst_ip, is_caller, n))
                dq = index.get((src_ip, is_caller, n))
                if not dq:
                    continue
                # newest first (a deque holds its candidates in ``seq`` order): once the best so far
                # matches both numbers, no older candidate can beat it. A loopback capture or a trunk
                # that reuses its numbers puts every recent INVITE in one deque; this looks at one or two.
                for c in reversed(dq):
                    if best_key[0] == 4 and c.seq < best_key[1]:
                        break
                    dt = ts - c.ts
                    if dt < 0 or dt > window or c.call_id == call_id:
                        continue
                    key = ((2 if callers & c.callers else 0) + (2 if callees & c.callees else 0), c.seq)
                    if key > best_key:
                        best_key, best = key, c
        self._seq += 1
        cand = _Candidate(ts, self._seq, call_id, callers, callees, state)
        for k in keys:
            dq = index.get(k)
            if dq is None:
                dq = index[k] = deque()
            dq.append(cand)
        if keys:
            self._order.append((ts, keys))
        return best.state if best is not None else None

    def _expire(self, now: float) -> None:
        limit = now - self.window
        order, index = self._order, self._index
        while order and order[0][0] < limit:
            _, keys = order.popleft()
            for k in keys:
                dq = index.get(k)
                if dq:
                    dq.popleft()
                    if not dq:
                        del index[k]

    def clear(self) -> None:
        self._index.clear()
        self._order.clear()
