"""Light, bounded message facts for real-time KPIs and detectors (not the full correlation engine).

The correlation engine (``streams/dialogs.py``, ``streams/engine.py``) publishes one summary per call when the call is over; the
alerts and the concurrent-call count cannot wait for that. :class:`InviteTracker` derives what they need from
the messages themselves, in O(1) per message and bounded memory:

* :meth:`InviteTracker.classify`: ``NEW``, ``RETRANS`` or ``DUP`` for every message. The transaction key is
  Call-ID + CSeq number + method (requests) or status (responses) + top Via branch. Seen again from the same
  capture node more than ``same_node_window_s`` after its latest sighting (from another node, more than
  ``dup_window_s`` after it): a retransmission (RFC 3261 retransmits after T1 = 500 ms). Seen again sooner:
  the same packet captured twice (``DUP``), which every consumer ignores. Keys are remembered ``ttl_s`` (64*T1 = 32 s, the longest retransmission).
* :meth:`InviteTracker.follow`: the call event a message causes, for out-of-dialog INVITEs:

  ==============  =====================================================================================
  ``ATTEMPT``     the first INVITE without To tag of a Call-ID (auth retries, retransmissions, other
                  proxy hops and re-INVITEs of the same Call-ID are not new attempts)
  ``PROVISIONAL`` its first 101-199 response (PDD end when it comes before the final)
  ``CHALLENGE``   a 401/407 to it (the call stays open for the retry with credentials)
  ``FINAL``       its first final response other than 2xx/401/407
  ``ANSWER``      its first 2xx (a final too); the call is then in progress
  ``END``         BYE of a call in progress, or ``max_call_s`` after the answer without BYE
  ``TIMEOUT``     no final response: ``ttl_s`` after the INVITE with no response at all (RFC 3261
                  Timer B; ``call.responded`` is False), or ``invite_timeout_s`` after its last response
  ==============  =====================================================================================

A call is keyed by Call-ID only, so a proxy's hops (same Call-ID) are one call, counted once; a B2BUA's legs
are separate calls. ``keys_of(invite)`` (given by the owner) computes the aggregation keys stored with the call
(strings such as ``"trunk|carrier-a"``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sipscope.records import SipMessage
from streams.anomaly.windows import Recent

NEW, RETRANS, DUP = 0, 1, 2
ATTEMPT, PROVISIONAL, CHALLENGE, FINAL, ANSWER, END, TIMEOUT = range(7)
EVENT_NAMES = ("attempt", "provisional", "challenge", "final", "answer", "end", "timeout")


class Call:
    """What the tracker knows about one call (one Call-ID)."""

    __slots__ = (
        "answer_ts",
        "call_id",
        "challenged",
        "dst",
        "end_ts",
        "final_status",
        "final_ts",
        "invite_ts",
        "keys",
        "last_ts",
        "prov_ts",
        "responded",
        "src",
    )

    def __init__(self, call_id: str, invite_ts: float, src: str, dst: str, keys: tuple[str, ...]) -> None:
        self.call_id, self.invite_ts, self.src, self.dst, self.keys = call_id, invite_ts, src, dst, keys
        self.prov_ts: float | None = None
        self.responded = False
        self.challenged = False
        self.final_status: int | None = None
        self.final_ts: float | None = None
        self.answer_ts: float | None = None
        self.end_ts: float | None = None
        self.last_ts = invite_ts

    @property
    def pdd_ms(self) -> float | None:
        """INVITE to first 18x, else to the final response (carrier post-dial delay)."""
        end = self.prov_ts if self.prov_ts is not None else self.final_ts
        return None if end is None else (end - self.invite_ts) * 1000.0

    def to_state(self) -> list:
        return [self.call_id, self.invite_ts, self.src, self.dst, list(self.keys), self.prov_ts,
                self.responded, self.challenged, self.final_status, self.final_ts, self.answer_ts, self.end_ts,
                self.last_ts]

    @classmethod
    def from_state(cls, s: list) -> Call:
        c = cls(s[0], s[1], s[2], s[3], tuple(s[4]))
        (c.prov_ts, c.responded, c.challenged, c.final_status, c.final_ts, c.answer_ts, c.end_ts,
         c.last_ts) = s[5:13]
        return c


class InviteTracker:
    """Retransmission/duplicate classification and out-of-dialog INVITE events (see the module docstring)."""

    def __init__(self, keys_of: Callable[[SipMessage], tuple], *, ttl_s: float = 32.0, dup_window_s: float = 0.5,
                 same_node_window_s: float = 0.05, invite_timeout_s: float = 180.0, max_call_s: float = 14400.0,
                 max_messages: int = 300_000, max_calls: int = 200_000) -> None:
        self.keys_of = keys_of
        self.ttl_s, self.dup_window_s, self.same_node_window_s = ttl_s, dup_window_s, same_node_window_s
        self.invite_timeout_s, self.max_call_s, self.max_calls = invite_timeout_s, max_call_s, max_calls
        self.recent = Recent(ttl_s, max_messages)
        self.trying: OrderedDict[str, Call] = OrderedDict()
        """INVITEs with no response yet, in INVITE order."""
        self.proceeding: OrderedDict[str, Call] = OrderedDict()
        """INVITEs with a provisional or a challenge, in order of their last response."""
        self.active: OrderedDict[str, Call] = OrderedDict()
        """Answered calls not yet ended, in answer order."""
        self.closed = Recent(ttl_s, max_calls)
        """Call-IDs that ended recently (stray copies must not start a new attempt)."""
        self.dropped = 0
        """Calls forgotten because a table was full."""

    # -- per message -----------------------------------------------------------------------------------

    def classify(self, m: SipMessage) -> int:
        key = f"{m.call_id}\x1f{m.cseq_num}\x1f{m.method if m.is_request else m.status_code}\x1f{m.via_branch}"
        prev = self.recent.seen.get(key)
        if prev is None:
            self.recent.put(key, m.ts, m.node)
            return NEW
        dt = m.ts - prev[1]
        if dt <= (self.same_node_window_s if prev[2] == m.node else self.dup_window_s):
            return DUP
        prev[1], prev[2] = m.ts, m.node
        return RETRANS

    def follow(self, m: SipMessage) -> tuple[int, Call] | None:
        cid = m.call_id
        if m.is_request:
            method = m.method
            if method == "INVITE":
                if m.to_tag:
                    return None
                c = self.trying.get(cid) or self.proceeding.get(cid)
                if c is not None:
                    c.challenged = False  # the retry with credentials (or a retransmission / another hop)
                    return None
                if cid in self.active or cid in self.closed.seen:
                    return None
                c = Call(cid, m.ts, m.src_ip, m.dst_ip, self.keys_of(m))
                self._put(self.trying, cid, c)
                return ATTEMPT, c
            if method == "BYE":
                c = self.active.pop(cid, None)
                if c is None:
                    return None
                c.end_ts = c.last_ts = m.ts
                self.closed.put(cid, m.ts, "")
                return END, c
            return None
        if m.cseq_method != "INVITE":
            return None
        c = self.trying.pop(cid, None)
        if c is None:
            c = self.proceeding.pop(cid, None)
            if c is None:
                return None
        st = m.status_code or 0
        c.responded = True
        c.last_ts = m.ts
        if st < 200:
            self._put(self.proceeding, cid, c)
            if st > 100 and c.prov_ts is None:
                c.prov_ts = m.ts
                return PROVISIONAL, c
            return None
        if st in (401, 407):
            c.challenged = True
            self._put(self.proceeding, cid, c)
            return CHALLENGE, c
        c.final_status, c.final_ts = st, m.ts
        if st < 300:
            c.answer_ts = m.ts
            self._put(self.active, cid, c)
            return ANSWER, c
        self.closed.put(cid, m.ts, "")
        return FINAL, c

    def _put(self, table: dict[str, Call], cid: str, c: Call) -> None:
        table[cid] = c
        if len(table) > self.max_calls:
            del table[next(iter(table))]
            self.dropped += 1

    # -- time ------------------------------------------------------------------------------------------

    def expire(self, now: float) -> list[tuple[int, Call]]:
        """Forget old transactions; return the ``TIMEOUT``/``END`` events that are due at ``now``."""
        self.recent.expire(now)
        self.closed.expire(now)
        out: list[tuple[int, Call]] = []
        for table, wait in ((self.trying, self.ttl_s), (self.proceeding, self.invite_timeout_s)):
            while table:  # OrderedDicts: the first key in O(1)
                cid = next(iter(table))
                c = table[cid]
                if c.last_ts + wait > now:
                    break
                del table[cid]
                c.end_ts = c.last_ts + wait
                self.closed.put(cid, c.end_ts, "")
                out.append((TIMEOUT, c))
        active = self.active
        while active:
            cid = next(iter(active))
            c = active[cid]
            if c.answer_ts + self.max_call_s > now:
                break
            del active[cid]
            c.end_ts = c.answer_ts + self.max_call_s
            out.append((END, c))
        return out

    # -- state -----------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "recent": self.recent.to_state(),
            "closed": self.closed.to_state(),
            "trying": [c.to_state() for c in self.trying.values()],
            "proceeding": [c.to_state() for c in self.proceeding.values()],
            "active": [c.to_state() for c in self.active.values()],
            "dropped": self.dropped,
        }

    def load(self, s: dict[str, Any]) -> None:
        self.recent.load(s["recent"])
        self.closed.load(s["closed"])
        for name in ("trying", "proceeding", "active"):
            table = getattr(self, name)
            table.clear()
            for cs in s[name]:
                c = Call.from_state(cs)
                table[c.call_id] = c
        self.dropped = s["dropped"]
