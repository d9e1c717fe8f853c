"""Adaptive baselines: an EWMA of a per-minute value per key, optionally one more per hour of day.

What "normal" is for a key (a source IP's INVITEs per minute, a trunk's answered calls per minute, its
peak concurrent calls) is learnt from the stream itself, minute by minute, in event time:

* ``observe(key, minute, value)`` folds the value of one finished minute into the key's EWMA
  (``mean += alpha * (value - mean)``, ``alpha = 1 - 0.5 ** (1 / halflife_min)``). Minutes in which the key
  was not seen at all count as zeros, applied lazily in O(1): ``mean *= (1 - alpha) ** idle_minutes``.
  The first observation starts the mean at its value (no bias towards zero).
* ``observe(..., frozen=True)`` - used while the key has an open alert - learns nothing: neither the
  value nor the idle minutes before it, so an attack never becomes "normal" and does not drag the
  baseline down either. The key's clock moves on.
* ``expected(key, minute)`` is the baseline for ``minute`` (the minute being judged, not yet observed):
  the mean decayed over the idle minutes since the last observation, or ``None`` until the key has
  ``warmup_min`` minutes of history.
* With ``seasonal=True`` each key also keeps 24 hour-of-day EWMAs (UTC hours of the minute), updated only
  by minutes of their hour, with idle minutes of that hour zero-filled exactly. ``expected`` prefers the
  slot once it has ``seasonal_warmup_min`` minutes of history, else the flat EWMA.

Keys are capped (``max_keys``); the key observed least recently is dropped first. State is plain lists
(``to_state``/``from_state``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


def alpha_for(halflife_min: float) -> float:
    """EWMA weight of a new minute for a half-life in minutes."""
    return 1.0 - 0.5 ** (1.0 / max(halflife_min, 1e-9))


def _hour_minutes_before(x: int, h: int) -> int:
    """Minutes ``t`` in ``[0, x)`` (minutes since the epoch) whose UTC hour of day is ``h``."""
    days, rest = divmod(x, 1440)
    return days * 60 + min(max(rest - h * 60, 0), 60)


def hour_minutes_between(a: int, b: int, h: int) -> int:
    """Minutes strictly between minute ``a`` and minute ``b`` whose UTC hour of day is ``h``."""
    if b <= a + 1:
        return 0
    return _hour_minutes_before(b, h) - _hour_minutes_before(a + 1, h)


class Ewma:
    """One EWMA: ``mean``, minutes of history ``n`` and the last minute seen ``last``."""

    __slots__ = ("last", "mean", "n")

    def __init__(self, mean: float, n: int, last: int) -> None:
        self.mean, self.n, self.last = mean, n, last

    def to_state(self) -> list:
        return [self.mean, self.n, self.last]


class _Key:
    __slots__ = ("flat", "slots")

    def __init__(self, flat: Ewma, slots: list[Ewma | None] | None) -> None:
        self.flat, self.slots = flat, slots


class Baselines:
    """EWMA baselines of per-minute values, one per key (see the module docstring)."""

    def __init__(self, halflife_min: float = 60.0, warmup_min: int = 30, *, seasonal: bool = False,
                 seasonal_warmup_min: int = 120, max_keys: int = 50_000) -> None:
        self.alpha = alpha_for(halflife_min)
        self.keep = 1.0 - self.alpha
        self.warmup = warmup_min
        self.seasonal = seasonal
        self.seasonal_warmup = seasonal_warmup_min
        self.max_keys = max_keys
        self.keys: OrderedDict[Any, _Key] = OrderedDict()
        """Least recently observed first (an ``OrderedDict``: the eviction at ``max_keys`` is O(1))."""

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: Any) -> bool:
        return key in self.keys

    def observe(self, key: Any, minute: int, value: float, frozen: bool = False) -> None:
        """Fold the finished ``minute``'s ``value`` into ``key`` (nothing is learnt when ``frozen``)."""
        keys = self.keys
        k = keys.get(key)
        if k is None:
            if frozen:
                return
            if len(keys) >= self.max_keys:
                keys.popitem(last=False)
            slots = None
            if self.seasonal:
                slots = [None] * 24
                slots[(minute // 60) % 24] = Ewma(float(value), 1, minute)
            keys[key] = _Key(Ewma(float(value), 1, minute), slots)
            return
        keys.move_to_end(key)  # most recently observed last
        e = k.flat
        if minute <= e.last:
            return  # that minute is already folded in
        if frozen:
            e.last = minute
            if k.slots is not None:
                s = k.slots[(minute // 60) % 24]
                if s is not None:
                    s.last = minute
            return
        gap = minute - e.last - 1
        a = self.alpha
        if gap > 0:
            e.mean *= self.keep ** gap
            e.n += gap
        e.mean += a * (value - e.mean)
        e.n += 1
        e.last = minute
        if k.slots is not None:
            h = (minute // 60) % 24
            s = k.slots[h]
            if s is None:
                k.slots[h] = Ewma(float(value), 1, minute)
            else:
                g = hour_minutes_between(s.last, minute, h)
                if g > 0:
                    s.mean *= self.keep ** g
                    s.n += g
                s.mean += a * (value - s.mean)
                s.n += 1
                s.last = minute

    def expected(self, key: Any, minute: int) -> float | None:
        """Baseline of ``key`` for ``minute`` (decayed over idle minutes), ``None`` while not warm."""
        k = self.keys.get(key)
        if k is None:
            return None
        if k.slots is not None:
            h = (minute // 60) % 24
            s = k.slots[h]
            if s is not None:
                g = hour_minutes_between(s.last, minute, h)
                if s.n + g >= self.seasonal_warmup:
                    return s.mean * self.keep ** g
        e = k.flat
        gap = max(minute - e.last - 1, 0)
        if e.n + gap < self.warmup:
            return None
        return e.mean * self.keep ** gap if gap else e.mean

    def to_state(self) -> list:
        out = []
        for key, k in self.keys.items():
            slots = None if k.slots is None else [None if s is None else s.to_state() for s in k.slots]
            out.append([list(key) if isinstance(key, tuple) else key, k.flat.to_state(), slots])
        return out

    def load(self, state: list) -> None:
        self.keys = OrderedDict()
        for key, flat, slots in state:
            k = tuple(key) if isinstance(key, list) else key
            self.keys[k] = _Key(Ewma(*flat), None if slots is None else [None if s is None else Ewma(*s) for s in slots])
