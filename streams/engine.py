"""The correlation engine as one object: calls + registrations, fed from one ``sip.messages`` stream.

This is what the Faust worker and ``sipscope analyze`` both drive::

    corr = Correlator(settings.correlation)
    for msg in messages:                 # roughly in capture-time order
        for rec in corr.feed(msg):       # CallSummary (sip.calls) or Registration (sip.registrations)
            publish(rec)
    for rec in corr.flush_all():         # end of capture / shutdown
        publish(rec)

``advance(now)`` moves event time without a message (a quiet stream still closes its calls).
"""

from __future__ import annotations

from sipscope.records import CallSummary, Registration, SipMessage
from sipscope.settings import CorrelationSettings
from streams.dialogs import CallTracker
from streams.registrations import RegistrationTracker
from streams.timers import INF
from streams.trunks import TrunkMap

Output = CallSummary | Registration


class Correlator:
    """:class:`~streams.dialogs.CallTracker` and :class:`~streams.registrations.RegistrationTracker`
    behind one ``feed`` / ``advance`` / ``flush_all``."""

    def __init__(self, settings: CorrelationSettings | None = None, *, track_changes: bool = False) -> None:
        cfg = settings if settings is not None else CorrelationSettings()
        self.settings = cfg
        self.trunks = TrunkMap(cfg.trunks)
        self.calls = CallTracker(cfg, self.trunks, track_changes=track_changes)
        self.registrations = RegistrationTracker(cfg, track_changes=track_changes)

    def feed(self, msg: SipMessage) -> list[Output]:
        """One message in; the call summaries / registrations that closed up to its time out."""
        if msg.cseq_method == "REGISTER":
            out: list[Output] = self.registrations.feed(msg)  # type: ignore[assignment]
            other = self.calls.advance(msg.ts)
        else:
            out = self.calls.feed(msg)  # type: ignore[assignment]
            other = self.registrations.advance(msg.ts)
        if other:
            out.extend(other)
        return out

    def advance(self, now: float) -> list[Output]:
        out: list[Output] = self.calls.advance(now)  # type: ignore[assignment]
        out.extend(self.registrations.advance(now))
        return out

    def flush_all(self, reason: str = "capture_end", now: float | None = None) -> list[Output]:
        if now is None:
            now = self.watermark
        now_arg = None if now == -INF else now
        out: list[Output] = self.calls.flush_all(reason, now_arg)  # type: ignore[assignment]
        out.extend(self.registrations.flush_all(reason, now_arg))
        return out

    @property
    def watermark(self) -> float:
        return max(self.calls.watermark, self.registrations.watermark)
