"""Settings, read from the environment (prefix ``SIPSCOPE_``) and an optional ``.env`` file.

One class per concern; every field documented. Nested fields use ``__``, e.g.
``SIPSCOPE_KAFKA__BOOTSTRAP=127.0.0.1:9092``. Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/sipscope")
    return Path.home() / ".local" / "state" / "sipscope"


class KafkaSettings(BaseModel):
    bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers (comma-separated host:port)."""
    topic_prefix: str = ""
    """Prefix added to every topic name (tests use it to isolate themselves)."""
    partitions: int = 6
    """Partitions of each sip.* topic when sipscope creates it (scale-out unit)."""


class ElasticsearchSettings(BaseModel):
    url: str = "http://127.0.0.1:9200"
    """Elasticsearch URL."""
    username: str | None = None
    password: SecretStr | None = None
    index_prefix: str = ""
    """Prefix added to every index/template name (tests use it to isolate themselves)."""
    retention_days: int = 5
    """Days each daily index is kept after its day (the trace tool's promise: 5 days)."""


class NumberingSettings(BaseModel):
    country_code: str = "61"
    """Country code used to turn national numbers into E.164 (default Australia, as in the examples)."""
    trunk_prefix: str = "0"
    """National trunk prefix replaced by the country code (``0289707501`` -> ``61289707501``)."""
    international_prefix: str = "00"
    """International call prefix stripped before E.164 digits (``0061...`` -> ``61...``)."""


class CaptureSettings(BaseModel):
    compression: str = "zstd"
    """Kafka producer compression (zstd, lz4, snappy, gzip, none)."""
    linger_ms: int = 20
    """Producer batching delay."""
    message_timeout_ms: int = 10000
    """How long the producer retries a record before it counts as undeliverable and goes to the spool."""
    spool_dir: Path = Field(default_factory=lambda: _default_state_dir() / "spool")
    """Disk queue used while Kafka is unreachable; replayed in order when it returns."""
    spool_max_bytes: int = 1 << 30
    """Bound of the disk spool; records beyond it are counted as dropped (``sipscope_spool_dropped_total``)."""
    sip_ports: list[int] = [5060, 5061, 5080]
    """Ports treated as SIP by the capture filters (live BPF filter, pcap fast path)."""


class StackSettings(BaseModel):
    state_dir: Path = Field(default_factory=lambda: _default_state_dir())
    """Data, logs and pid files of the local stack (``/var/lib/sipscope`` as root, so the unprivileged
    Elasticsearch user can reach it; ``~/.local/state/sipscope`` otherwise)."""
    cache_dir: Path = Path.home() / ".cache" / "sipscope"
    """Downloaded Kafka jars and the Elasticsearch zip."""
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    es_host: str = "127.0.0.1"
    es_port: int = 9200
    es_transport_port: int = 9300
    kafka_heap: str = "512m"
    es_heap: str = "512m"
    es_user: str = "sipscope"
    """Unprivileged user that runs Elasticsearch when the stack is started as root."""
    java_home: Path | None = None
    """JDK for Kafka (default: the machine's java)."""
    es_java_home: Path | None = None
    """JDK 21+ for Elasticsearch 9 (default: the newest JDK found under /usr/lib/jvm)."""
    start_timeout: float = 180.0
    """Seconds to wait for each service to answer."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SIPSCOPE_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    node: str = "sipscope-1"
    """Capture node id stamped on every message this agent captures."""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    numbering: NumberingSettings = Field(default_factory=NumberingSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    correlation_headers: list[str] = ["X-CID", "P-Charging-Vector", "Session-ID", "X-Call-ID"]
    """Headers, in order of preference, whose value links the legs of one call through a B2BUA/SBC."""
    metrics_port: int = 0
    """Port of the Prometheus metrics endpoint of long-running commands (0 = off; bound to loopback)."""
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_json: bool = True
    """Structured JSON logs on stderr (set false for human-readable console logs)."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
