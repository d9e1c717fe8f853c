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
links legs that reach the same partition; the header-based path (1) has no such limit.
"""

from __future__ import annotations

from collections import deque
from typing import Any

_ANONYMOUS = frozenset({"anonymous", "unknown", "restricted", "unavailable", "private", "anonymous.invalid"})


def numbers(*values: str | None) -> frozenset[str]:
    """The set of usable numbers/users among ``values`` (None, empty and anonymous ones dropped)."""
    return frozenset(v for v in values if v and v.lower() not in _ANONYMOUS)


class _Candidate:
    __slots__ = ("ts", "call_id", "callers", "callees", "state")

    def __init__(self, ts: float, call_id: str, callers: frozenset[str], callees: frozenset[str], state: Any):
        self.ts = ts
        self.call_id = call_id
        self.callers = callers
        self.callees = callees
        self.state = state


class LegLinker:
    """Index of recent first INVITEs by destination host; see the module docstring."""

    __slots__ = ("window", "_by_host", "_order")

    def __init__(self, window: float) -> None:
        self.window = window
        self._by_host: dict[str, deque[_Candidate]] = {}
        self._order: deque[tuple[float, str]] = deque()

    def link(self, state: Any, ts: float, src_ip: str, dst_ip: str,
             callers: frozenset[str], callees: frozenset[str]) -> Any | None:
        """Register leg ``state`` (an object with ``call_id`` and ``correlation_id``) and return the
        earlier leg's state it belongs to, or None. Does not modify either state."""
        self._expire(ts)
        found = None
        dq = self._by_host.get(src_ip)
        if dq and self.window > 0:
            best_score = 0
            for c in reversed(dq):
                dt = ts - c.ts
                if dt < 0 or dt > self.window or c.call_id == state.call_id:
                    continue
                score = (2 if callers & c.callers else 0) + (2 if callees & c.callees else 0)
                if score > best_score:
                    best_score, found = score, c.state
                    if score == 4:
                        break
        if self.window > 0:
            self._by_host.setdefault(dst_ip, deque()).append(_Candidate(ts, state.call_id, callers, callees, state))
            self._order.append((ts, dst_ip))
        return found

    def _expire(self, now: float) -> None:
        limit = now - self.window
        order, by_host = self._order, self._by_host
        while order and order[0][0] < limit:
            _, host = order.popleft()
            dq = by_host.get(host)
            if dq:
                dq.popleft()
                if not dq:
                    del by_host[host]

    def clear(self) -> None:
        self._by_host.clear()
        self._order.clear()
