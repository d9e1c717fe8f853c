"""Alert life cycle shared by every detector: open, cool-down, escalation, resolution.

A detector calls :meth:`AlertBook.hit` each time its condition holds for a subject. Per
``(name, subject_type, subject)``:

* no alert open -> an ``open`` :class:`~sipscope.records.Alert` is emitted. Its ``alert_id`` is
  ``stable_id(name, subject, window_start)`` and its ``id`` ``stable_id(name, subject, window_start, "open")``,
  so a replay of the same records gives the same ids;
* alert open -> nothing is emitted during ``cooldown_s`` after the last emission; after it, while the
  condition still holds, a reminder (``open``, same ``alert_id``, new ``id``); a higher severity than the one
  last emitted is emitted at once;
* :meth:`AlertBook.expire` resolves an alert whose condition has not held for ``quiet_s``: a ``resolved``
  event with the same ``alert_id``, stamped ``last_hit + quiet_s`` (event time, independent of how often the
  caller advances the clock).

:meth:`AlertBook.frozen` is what detectors ask before letting a key's baseline learn: not while its alert is
open, for at most ``max_freeze_s`` (a change that lasts that long becomes the new normal, so the alert can
resolve instead of staying open for ever).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sipscope.records import Alert, stable_id

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class _Open:
    __slots__ = (
        "alert_id",
        "baseline",
        "description",
        "evidence",
        "last_emit",
        "last_hit",
        "name",
        "observed",
        "opened",
        "severity",
        "subject",
        "subject_type",
        "threshold",
        "window_start",
    )

    def to_state(self) -> list:
        return [getattr(self, f) for f in self.__slots__]

    @classmethod
    def from_state(cls, s: list) -> _Open:
        o = cls()
        for f, v in zip(cls.__slots__, s):
            setattr(o, f, v)
        return o


class AlertBook:
    """Open alerts by detector and subject (see the module docstring)."""

    def __init__(self, cooldown_s: float, quiet_s: float, max_freeze_s: float = float("inf")) -> None:
        self.cooldown_s, self.quiet_s, self.max_freeze_s = cooldown_s, quiet_s, max_freeze_s
        self.open: dict[str, _Open] = {}

    @staticmethod
    def key(name: str, subject_type: str, subject: str) -> str:
        return f"{name}|{subject_type}|{subject}"

    def is_open(self, name: str, subject_type: str, subject: str) -> bool:
        return f"{name}|{subject_type}|{subject}" in self.open

    def frozen(self, name: str, subject_type: str, subject: str, now: float) -> bool:
        """Whether the subject's baseline must not learn at ``now`` (alert open for less than ``max_freeze_s``)."""
        o = self.open.get(f"{name}|{subject_type}|{subject}")
        return o is not None and now - o.opened < self.max_freeze_s

    def hit(self, out: list[Alert], *, name: str, subject_type: str, subject: str, ts: float, window_s: float,
            observed: float, threshold: float | None, baseline: float | None, description: str,
            evidence: Sequence[str], severity: str) -> None:
        key = f"{name}|{subject_type}|{subject}"
        o = self.open.get(key)
        window_start = ts - window_s
        if o is None:
            o = _Open()
            o.alert_id = stable_id(name, subject, window_start)
            o.name, o.subject_type, o.subject, o.window_start, o.opened = name, subject_type, subject, window_start, ts
            self.open[key] = o
        elif not (SEVERITY_RANK[severity] > SEVERITY_RANK[o.severity] or ts - o.last_emit >= self.cooldown_s):
            o.last_hit = max(o.last_hit, ts)
            o.observed, o.threshold, o.baseline, o.description = observed, threshold, baseline, description
            return
        o.last_hit = o.last_emit = ts
        o.severity = severity
        o.observed, o.threshold, o.baseline, o.description = observed, threshold, baseline, description
        o.evidence = list(evidence)
        out.append(Alert(
            id=stable_id(name, subject, window_start, "open"), alert_id=o.alert_id, name=name, status="open",
            severity=severity, subject_type=subject_type, subject=subject, ts=ts, window_start=window_start,
            window_end=ts, observed=observed, threshold=threshold, baseline=baseline, description=description,
            evidence=list(evidence),
        ))

    def expire(self, now: float, out: list[Alert]) -> None:
        """Resolve every alert quiet for ``quiet_s`` at ``now``."""
        quiet = self.quiet_s
        done = [k for k, o in self.open.items() if o.last_hit + quiet <= now]
        for k in done:
            o = self.open.pop(k)
            ts = o.last_hit + quiet
            out.append(Alert(
                id=stable_id(o.name, o.subject, o.window_start, "resolved"), alert_id=o.alert_id, name=o.name,
                status="resolved", severity=o.severity, subject_type=o.subject_type, subject=o.subject, ts=ts,
                window_start=o.window_start, window_end=o.last_hit, observed=o.observed, threshold=o.threshold,
                baseline=o.baseline,
                description=f"resolved: condition not seen since {o.last_hit:.3f} ({quiet:.0f} s quiet); last: {o.description}",
                evidence=o.evidence,
            ))

    def to_state(self) -> list[Any]:
        return [o.to_state() for o in self.open.values()]

    def load(self, s: list[Any]) -> None:
        self.open = {}
        for row in s:
            o = _Open.from_state(row)
            self.open[self.key(o.name, o.subject_type, o.subject)] = o
