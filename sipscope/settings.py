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


class IndexerSettings(BaseModel):
    """``sipscope index``: Kafka consumer group -> Elasticsearch bulk writer, and the retention sweeper."""

    group_id: str = "sipscope-indexer"
    """Kafka consumer group; every indexer process of one group shares the partitions of the sip.* topics."""
    instance_id: str | None = None
    """Static group membership (``group.instance.id``): a restarted process takes its partitions back at once."""
    families: list[str] = ["messages", "calls", "registrations", "stats", "alerts"]
    """Index families (and so topics) this process consumes (see ``indexers/families.py``)."""
    batch_size: int = 2000
    """Records per Elasticsearch bulk batch (offsets are committed after each accepted batch)."""
    flush_interval: float = 1.0
    """Seconds after which a partial batch is written anyway (bounds the delay until a message is searchable)."""
    bulk_max_bytes: int = 20 * 1024 * 1024
    """Largest bulk request body; a batch above it is sent in several requests."""
    request_timeout: float = 60.0
    """Seconds one Elasticsearch request may take."""
    backoff_initial: float = 0.5
    """First wait after Elasticsearch is down or pushes back (429/5xx); doubled on each retry."""
    backoff_max: float = 30.0
    """Longest wait between retries while Elasticsearch is down."""
    session_timeout_ms: int = 45000
    """Kafka group session timeout: how soon the partitions of a dead indexer go to the others."""
    sweep_interval: float = 3600.0
    """Seconds between runs of the retention sweeper inside ``sipscope index`` (0 = off; only used without ILM)."""
    progress_interval: float = 10.0
    """Seconds between progress log lines (docs/s, lag, retries, rejects)."""
    setup_on_start: bool = True
    """Run ``sipscope setup`` (templates, ILM policy) when the indexer starts."""


class CorrelationSettings(BaseModel):
    """Call/registration correlation (``streams/``). Every timer runs on message event time, never the clock."""

    no_final_timeout_s: float = 32.0
    """INVITE with no response at all (RFC 3261 Timer B = 64*T1); also the wait for a final after a CANCEL."""
    proceeding_timeout_s: float = 180.0
    """INVITE answered only provisionally (100/18x) with nothing since (RFC 3261 Timer C, > 3 min)."""
    answered_timeout_s: float = 4 * 3600.0
    """Answered call with no message (no BYE, no refresh) for this long is closed as ``timeout_no_bye``."""
    bye_wait_s: float = 2.0
    """After a BYE: wait for its 200 and stray retransmissions, then close the call."""
    final_wait_s: float = 5.0
    """After a final failure response: wait for the ACK (and the upstream hop's copy), then close."""
    auth_retry_wait_s: float = 64.0
    """After a 401/407 (INVITE or REGISTER): wait this long for the retry with credentials on the same
    Call-ID (phones that prompt the user take 15-50 s), else the call is ``unauthorized``."""
    register_timeout_s: float = 32.0
    """REGISTER with no final response (RFC 3261 Timer F)."""
    dedup_window_s: float = 0.5
    """The same payload seen by another capture node within this window is a duplicate, not a message."""
    dedup_same_node_window_s: float = 0.05
    """The same payload seen twice by the same node within this window is a duplicate capture; later it is a
    retransmission (RFC 3261 retransmits after T1 = 500 ms, so the window must stay well below T1)."""
    leg_link_window_s: float = 2.0
    """B2BUA leg heuristic: the second leg's INVITE must follow the first leg's within this window."""
    interim_interval_s: float = 300.0
    """Interim (``final=False``) summary of an answered call every this many seconds; 0 disables them."""
    closed_memory_s: float = 32.0
    """A closed Call-ID is remembered this long so stray copies of its requests do not open a new call."""
    trunks: dict[str, str] = {}
    """IP or CIDR -> trunk/carrier name (longest prefix wins), e.g. ``{"203.0.113.0/24": "carrier-a"}``;
    env: ``SIPSCOPE_CORRELATION__TRUNKS='{"203.0.113.0/24": "carrier-a"}'``."""


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
    correlation: CorrelationSettings = Field(default_factory=CorrelationSettings)
    indexer: IndexerSettings = Field(default_factory=IndexerSettings)
    correlation_headers: list[str] = ["X-CID", "P-Charging-Vector", "Session-ID", "X-Call-ID"]
    """Headers, in order of preference, whose value links the legs of one call through a B2BUA/SBC."""
    hep_auth_key: SecretStr | None = None
    """When set, the HEP collector requires this auth key (HEPv3 chunk 0x000e) on every packet."""
    metrics_port: int = 0
    """Port of the Prometheus metrics endpoint of long-running commands (0 = off; bound to loopback)."""
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_json: bool = True
    """Structured JSON logs on stderr (set false for human-readable console logs)."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
