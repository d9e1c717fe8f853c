"""What every detector shares: the hooks the engine calls, and keyed window state.

A detector implements any of these hooks (the engine calls only the ones a detector overrides):

* ``on_message(m, flag, eng)`` - every message that is not a duplicate capture (``flag`` is
  :data:`~streams.anomaly.calltrack.NEW` or :data:`~streams.anomaly.calltrack.RETRANS`);
* ``on_call_event(ev, call, m, eng)`` - events of :class:`~streams.anomaly.calltrack.InviteTracker`
  (``m`` is the message that caused it, ``None`` for time-driven ``TIMEOUT``/``END``);
* ``on_call(c, eng)`` - a final :class:`~sipscope.records.CallSummary`;
* ``on_registration(r, eng)`` - a :class:`~sipscope.records.Registration`;
* ``on_minute(minute, eng)`` - the event-time minute ``minute`` (epoch minutes) has ended.

State: ``to_state()`` returns plain lists/dicts; ``load(state)`` restores it into a fresh detector.
Subjects are ``"type|value"`` strings (``"ip|192.0.2.1"``, ``"trunk|carrier-a"``, ``"trunk|*"`` = all).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from streams.anomaly.windows import BUCKETS, Window

if TYPE_CHECKING:
    from streams.anomaly.engine import AnomalyEngine


class Detector:
    name = ""

    def __init__(self, eng: AnomalyEngine) -> None:
        self.s = eng.s

    def to_state(self) -> Any:
        return None

    def load(self, state: Any) -> None:
        pass


def split(subject_key: str) -> tuple[str, str]:
    """``"trunk|carrier-a"`` -> ``("trunk", "carrier-a")``."""
    t, _, v = subject_key.partition("|")
    return t, v


class Keyed:
    """A sliding window of ``k`` counters plus example Call-IDs, for one key of one detector."""

    __slots__ = ("ev", "extra", "win")

    def __init__(self, k: int = 1) -> None:
        self.win = Window(k)
        self.ev: list[str] = []
        self.extra: Any = None

    def to_state(self) -> list:
        return [self.win.to_state(), self.ev, self.extra]

    @classmethod
    def from_state(cls, s: list) -> Keyed:
        o = cls.__new__(cls)
        o.win, o.ev, o.extra = Window.from_state(s[0]), list(s[1]), s[2]
        return o


def dump_table(table: dict[str, Keyed]) -> list:
    return [[k, v.to_state()] for k, v in table.items()]


def load_table(rows: list) -> OrderedDict[str, Keyed]:
    """A detector's key table (an ``OrderedDict``, see :func:`streams.anomaly.windows.touch`)."""
    return OrderedDict((k, Keyed.from_state(v)) for k, v in rows)


def bucket_width(window_s: float) -> float:
    return window_s / BUCKETS
