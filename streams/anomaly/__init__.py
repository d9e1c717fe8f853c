"""Real-time anomaly detection over SIP (topic ``sip.alerts``): see :mod:`streams.anomaly.engine`."""

from streams.anomaly.engine import DETECTORS, AnomalyEngine

__all__ = ["DETECTORS", "AnomalyEngine"]
