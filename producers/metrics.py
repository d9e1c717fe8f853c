"""Prometheus counters of the capture agents (pcap, live, HEP), registered once on the default registry.

Exposed by :func:`start_metrics_server` when ``SIPSCOPE_METRICS_PORT`` is set (loopback by default).
"""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

CAPTURE_PACKETS = Counter(
    "sipscope_capture_packets_total", "Packets/datagrams received by a capture source.", ["source"]
)
SIP_MESSAGES = Counter(
    "sipscope_sip_messages_total", "SIP messages parsed and turned into records by a capture source.", ["source"]
)
REJECTED = Counter(
    "sipscope_rejected_total", "Inputs a capture source could not use, by stable reason.", ["source", "reason"]
)
PUBLISHED = Counter("sipscope_published_total", "SipMessage records handed to a sink.", ["sink"])
HEP_SKIPPED = Counter(
    "sipscope_hep_skipped_total", "HEP packets not carrying SIP (RTCP, logs, reports...), by HEP proto type.",
    ["proto_type"],
)


def start_metrics_server(port: int, host: str = "127.0.0.1") -> bool:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; ``port`` 0 means off. True when started."""
    if not port:
        return False
    start_http_server(port, addr=host)
    return True
