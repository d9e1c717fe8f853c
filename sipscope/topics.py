"""Kafka topic names (one record type each, see :mod:`sipscope.records`) and their creation."""

from __future__ import annotations

from sipscope.settings import Settings, get_settings

MESSAGES = "sip.messages"
REJECTED = "sip.rejected"
CALLS = "sip.calls"
REGISTRATIONS = "sip.registrations"
STATS = "sip.stats"
ALERTS = "sip.alerts"
ALL = (MESSAGES, REJECTED, CALLS, REGISTRATIONS, STATS, ALERTS)


def name(topic: str, settings: Settings | None = None) -> str:
    """The topic's name with the configured prefix (tests and tenants isolate themselves by prefix)."""
    return f"{(settings or get_settings()).kafka.topic_prefix}{topic}"


def ensure(bootstrap: str, topics: list[str], partitions: int, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
    if not new:
        return
    for topic, fut in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            fut.result(timeout=timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
