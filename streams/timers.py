"""Event-time timers: one pending wake-up per key in a heap, with lazy cancellation.

The engines call :meth:`Timers.schedule` whenever a key's deadline may have moved *earlier*; moving it
later needs no call (the old, earlier entry fires, the owner sees the real deadline is later and
schedules again). So a message costs one dict lookup, and a heap push only when a state changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

INF = float("inf")


class Timers:
    """Min-heap of ``(when, key)`` holding at most one live entry per key."""

    __slots__ = ("_heap", "_queued")

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._queued: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._queued)

    def schedule(self, key: str, when: float) -> None:
        """Make sure ``key`` wakes up no later than ``when``."""
        q = self._queued.get(key)
        if q is None or when < q:
            heapq.heappush(self._heap, (when, key))
            self._queued[key] = when

    def cancel(self, key: str) -> None:
        self._queued.pop(key, None)

    def next_due(self) -> float:
        """Time of the earliest pending entry (possibly stale), ``inf`` when none."""
        return self._heap[0][0] if self._heap else INF

    def pop_due(self, now: float) -> Iterator[str]:
        """Keys whose wake-up time is <= ``now``, earliest first (ties by key: deterministic).

        The caller may :meth:`schedule` while iterating, but only for times > ``now``.
        """
        heap, queued = self._heap, self._queued
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if queued.get(key) != when:
                continue  # stale: cancelled, or superseded by an earlier entry already handled
            del queued[key]
            yield key

    def clear(self) -> None:
        self._heap.clear()
        self._queued.clear()
