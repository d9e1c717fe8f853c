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
    fetch_min_bytes: int = 65536
    """Consumers (worker, indexer) ask the broker to hold a fetch until this much data is there, or
    ``fetch_max_wait_ms`` passed: at a few thousand messages/s, a handful of fetches a second instead of one
    per producer batch (the broker's and the consumers' CPU), for at most ``fetch_max_wait_ms`` of delay."""
    fetch_max_wait_ms: int = 200
    """Longest a fetch waits on the broker for ``fetch_min_bytes``."""


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
    linger_ms: int = 50
    """Producer batching delay (ms): at a few thousand messages/s, 50 ms instead of 20 cut the capture's and the
    broker's CPU by a sixth and a third at 1,000 CPS end to end (docs/benchmarks.md), for at most 50 ms more
    before a message is searchable."""
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
    max_future_days: float = 1.0
    """Records whose event time is further ahead of now go to sip.rejected (``ts_in_future``): a daily index
    dated years ahead (a capture clock gone wrong) would escape the retention period. 0 = no limit."""


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


class KpiSettings(BaseModel):
    """Per-minute KPI rollup (``streams/kpis.py``, topic ``sip.stats``). Event time only, never the clock."""

    lateness_s: float = 120.0
    """A minute is first emitted once the event-time watermark passes its end by this much."""
    revise_s: float = 3600.0
    """After its first emission a minute is kept this long more and re-emitted (same id, so an upsert) when
    a late record changes it, e.g. the final summary of a long call counted at its start minute."""
    revise_interval_s: float = 60.0
    """Changed minutes are re-emitted at most once per this much event time (bounds the upsert rate)."""
    scopes: list[str] = ["all", "trunk", "src", "dst"]
    """Scopes rolled up: ``all``, ``trunk`` (src_trunk and dst_trunk), ``src`` and ``dst`` (IP addresses)."""
    max_keys_per_minute: int = 5000
    """Distinct keys of one scope in one minute; further keys are folded into the key ``~other``."""
    max_rows: int = 200_000
    """Minute rows kept in memory; beyond it the oldest emitted minutes are forgotten early."""
    pdd_samples: int = 1000
    """PDD values kept per row for the percentiles; above it a deterministic sample (smallest hashes of
    the Call-ID) is kept."""
    max_call_s: float = 4 * 3600.0
    """An answered call with no BYE seen stops counting as concurrent after this long."""
    max_tracked_calls: int = 200_000
    """Calls in setup or in progress tracked for concurrency; the oldest are dropped beyond it."""


class AnomalySettings(BaseModel):
    """Anomaly detectors (``streams/anomaly/``, topic ``sip.alerts``). Windows run on event time.

    Count windows are sliding, in buckets of a twelfth of the window. Baselines are EWMAs of per-minute
    values per key (optionally per hour of day) and are frozen while their key is alerting.
    """

    detectors: list[str] = [
        "scanner_user_agent", "registration_bruteforce", "extension_enumeration", "invite_flood", "asr_drop",
        "error_spike", "short_call_burst", "high_risk_destination", "retransmission_storm", "long_pdd",
        "traffic_collapse",
    ]
    """Detectors that run (stable snake_case names, also the ``name`` of their alerts)."""
    cooldown_s: float = 600.0
    """An open alert is not repeated for the same detector and subject within this long (a severity
    escalation is reported at once)."""
    resolve_quiet_s: float = 300.0
    """An open alert is resolved when its condition has not held for this long."""
    critical_factor: float = 3.0
    """Observed at or beyond this multiple of the threshold makes an alert ``critical`` instead of ``warning``."""
    evidence_max: int = 5
    """Example Call-IDs carried by an alert."""
    max_keys: int = 50_000
    """Keys (IPs, trunks, numbers) per detector table; idle keys are evicted first."""
    max_tracked_messages: int = 300_000
    """Recent transactions remembered to recognise retransmissions and duplicate captures."""
    max_tracked_calls: int = 200_000
    """Calls in setup or in progress tracked for PDD, outcomes and concurrency."""
    invite_timeout_s: float = 180.0
    """INVITE with no final response after this long: an ineffective attempt if nothing answered it."""
    max_call_s: float = 4 * 3600.0
    """Answered call with no BYE seen: no longer counted as in progress after this long."""
    baseline_halflife_min: float = 60.0
    """Half-life, in minutes, of the EWMA baselines."""
    baseline_warmup_min: int = 30
    """Minutes of history before a baseline is used."""
    baseline_max_freeze_min: float = 360.0
    """A baseline stops learning while its key alerts, but for at most this many minutes: a change that
    lasts longer becomes the new normal (and the alert can resolve)."""
    baseline_seasonal: bool = False
    """Keep one baseline per hour of day as well (used once warm, else the flat one)."""
    baseline_seasonal_warmup_min: int = 120
    """Minutes of history in one hour-of-day slot before it is used (120 = that hour on two days)."""
    scanner_patterns: list[str] = [
        r"friendly-scanner", r"sipvicious", r"sipcli", r"sip-scan", r"VaxSIPUserAgent", r"pplsip",
        r"^SIP Call$", r"sundayddr", r"iWar", r"SIPScan", r"\bsmap\b",
    ]
    """``scanner_user_agent``: regular expressions (case-insensitive, searched) on User-Agent of requests."""
    scanner_min_hits: int = 1
    """``scanner_user_agent``: matching requests from one source IP that open the alert."""
    scanner_window_s: float = 300.0
    """``scanner_user_agent``: window over which matching requests are counted."""
    bruteforce_window_s: float = 60.0
    """``registration_bruteforce``: sliding window."""
    bruteforce_failures: int = 10
    """``registration_bruteforce``: failed REGISTER authentications (403, or 401/407 answering a REGISTER
    that carried credentials) towards one IP in the window."""
    bruteforce_max_success_ratio: float = 0.2
    """``registration_bruteforce``: not raised when 2xx to REGISTER exceed this share of the failures
    (a busy NAT with one misconfigured phone)."""
    bruteforce_count_challenges: bool = False
    """``registration_bruteforce``: count every 401/407 to REGISTER, also plain challenges to requests
    without credentials (when the requests are not captured)."""
    enum_window_s: float = 60.0
    """``extension_enumeration``: sliding window."""
    enum_distinct_users: int = 10
    """``extension_enumeration``: distinct To/Request-URI users probed by one source IP in the window."""
    enum_negative_ratio: float = 0.8
    """``extension_enumeration``: share of the final responses to it that deny the user (see codes)."""
    enum_negative_codes: list[int] = [401, 403, 404, 407, 483, 484, 485, 604]
    """``extension_enumeration``: responses meaning "no such user / not allowed"."""
    enum_methods: list[str] = ["REGISTER", "INVITE", "OPTIONS", "SUBSCRIBE", "MESSAGE", "NOTIFY", "PUBLISH", "REFER"]
    """``extension_enumeration``: out-of-dialog requests whose users are counted."""
    flood_window_s: float = 60.0
    """``invite_flood``: sliding window."""
    flood_ip_floor: int = 100
    """``invite_flood``: initial INVITEs from one source IP in the window below which nothing is raised."""
    flood_trunk_floor: int = 300
    """``invite_flood``: the same towards one destination trunk (raised only once its baseline is warm)."""
    flood_factor: float = 3.0
    """``invite_flood``: raised at this multiple of the key's baseline (per window) when above the floor."""
    asr_window_s: float = 600.0
    """``asr_drop``: sliding window of call outcomes per trunk."""
    asr_min_attempts: int = 60
    """``asr_drop``: attempts with a known outcome in the window (60 in 10 min = 0.1 INVITE/s)."""
    asr_drop_points: float = 20.0
    """``asr_drop``: raised when ASR is this many percentage points below the baseline ..."""
    asr_drop_rel: float = 0.5
    """... or, for low baselines, below ``baseline * (1 - asr_drop_rel)`` (whichever drop is smaller)."""
    error_window_s: float = 300.0
    """``error_spike``: sliding window of session requests per trunk."""
    error_min_attempts: int = 30
    """``error_spike``: session requests in the window before a ratio is judged."""
    error_warn_pct: float = 5.0
    """``error_spike``: ISA share (408, 5xx, no response) raising a warning (RFC 6076 ISA band 5-15 %)."""
    error_critical_pct: float = 15.0
    """``error_spike``: ISA share raising a critical alert."""
    wangiri_window_s: float = 600.0
    """``short_call_burst``: sliding window of finished calls per source IP."""
    wangiri_min_calls: int = 20
    """``short_call_burst``: calls from one source in the window before it is judged."""
    wangiri_min_numbers: int = 10
    """``short_call_burst``: distinct called numbers among them."""
    wangiri_short_ratio: float = 0.8
    """``short_call_burst``: share of short calls (cancelled, rang <= max ring, or answered < max answered)."""
    wangiri_max_ring_s: float = 5.0
    """``short_call_burst``: a call abandoned after at most this much ringing is short."""
    wangiri_max_answered_s: float = 3.0
    """``short_call_burst``: an answered call shorter than this is short (false answer / Wangiri callback)."""
    high_risk_prefixes: list[str] = ["870", "881", "882", "883", "979"]
    """``high_risk_destination``: E.164 prefixes (digits, no ``+``) of high-risk ranges (IRSF hot lists).
    Default: the ITU shared ranges (Inmarsat 870, GMSS 881, international networks 882/883, IPRS 979)."""
    high_risk_window_s: float = 3600.0
    """``high_risk_destination``: window over which calls to one prefix are counted."""
    high_risk_min_calls: int = 1
    """``high_risk_destination``: initial INVITEs to one listed prefix that open the alert."""
    retrans_window_s: float = 60.0
    """``retransmission_storm``: sliding window per source IP."""
    retrans_floor: int = 100
    """``retransmission_storm``: retransmissions from one source IP in the window below which nothing is raised."""
    retrans_ratio: float = 0.3
    """``retransmission_storm``: and at least this share of its messages are retransmissions ..."""
    retrans_factor: float = 3.0
    """... and at least this multiple of its baseline once warm."""
    pdd_window_s: float = 300.0
    """``long_pdd``: sliding window per trunk."""
    pdd_threshold_ms: float = 5000.0
    """``long_pdd``: post-dial delay (INVITE to first 18x, else final) counted as long."""
    pdd_min_calls: int = 10
    """``long_pdd``: calls with a PDD in the window before it is judged."""
    pdd_slow_ratio: float = 0.5
    """``long_pdd``: share of long PDDs that raises (0.5 = the median PDD is above the threshold)."""
    collapse_drop_rel: float = 0.5
    """``traffic_collapse``: peak concurrent calls of a minute below ``(1 - this)`` times its moving average ..."""
    collapse_min_drop: int = 5
    """... and at least this many calls below it ..."""
    collapse_min_avg: float = 10.0
    """... for a key whose moving average is at least this many concurrent calls."""


class WorkerSettings(BaseModel):
    """``sipscope worker``: the Faust app that correlates ``sip.messages`` into calls and registrations.

    Event time drives every timer; the wall clock only moves an *idle* partition on (see ``clock_lag_s``).
    """

    app_id: str = "sipscope-worker"
    """Faust app id: the Kafka consumer group and the prefix of the changelog topics
    (``<app_id>-calls-changelog``, ``<app_id>-registrations-changelog``). Workers with one id share the work."""
    batch_max: int = 2000
    """Messages taken from the stream at a time; table writes of a batch are coalesced per Call-ID."""
    batch_within_s: float = 0.05
    """Longest wait to fill a batch (bounds the added latency)."""
    tick_s: float = 1.0
    """Interval of the periodic timer that moves idle partitions on by the wall clock and expires markers."""
    idle_s: float = 5.0
    """A partition with no message for this long (and nothing left to read) is idle."""
    clock_lag_s: float = 10.0
    """Wall-clock allowance: an idle partition's event time is moved to ``now - clock_lag_s``, so the calls it
    holds reach their timeouts when no more messages come. A message captured more than this long before
    it reaches the worker (agent spool replay, clock skew) may find its call already closed."""
    done_keep_s: float = 120.0
    """Wall-clock seconds a finished call's marker stays in its table (at least ``closed_memory_s`` of event
    time too); must exceed the commit interval so a replay after a crash never reopens a finished call."""
    commit_interval_s: float = 1.0
    """Offsets of processed messages are committed this often (what a crash replays at most)."""
    session_timeout_s: float = 10.0
    """Kafka group session timeout: how soon the partitions of a dead worker move to the others."""
    instance_id: str | None = None
    """Static group membership (``group.instance.id``, one per worker process): a restarted worker takes its
    partitions back at once instead of waiting for the session timeout. Off by default: with faust-streaming
    0.15.3 the quick rebalances of such a restart made Faust skip records in tests (see streams/app.py)."""
    heartbeat_s: float = 3.0
    """Kafka group heartbeat interval (below a third of the session timeout)."""
    standby_replicas: int = 0
    """Standby copies of each table partition kept by other workers (faster fail-over, more memory)."""
    web_port: int = 0
    """Port of Faust's web server on 127.0.0.1 (0 = off)."""
    uvloop: bool = True
    """Run on uvloop when it is installed (about a sixth less CPU per message than asyncio's own loop)."""
    rewind_timeout_s: float = 10.0
    """How long a partition waits for the records of a hole in the offsets Faust delivered after seeking back
    to it (see ``streams/app.py``); then the hole is counted as lost (``offset_gap``) and processing goes on."""
    stall_s: float = 10.0
    """A partition that has records left to read, whose consumer has fetched past the last record the worker
    got, and that delivered nothing for this long is sought back to that record (records Faust dropped at
    the very end of a partition: no later record reveals that hole; see ``streams/app.py``)."""
    pack_records: bool = True
    """With ``fast_handoff``: the records of one fetch for one partition reach the agent as one Faust event
    (Faust's per-event cost paid once per fetch instead of once per record; ``streams/faust_fastpath.py``)."""
    fast_handoff: bool = True
    """Hand fetched records to the agents inline unless the hand-off blocks (:mod:`streams.faust_fastpath`);
    False runs faust-streaming's own per-record task race."""
    progress_s: float = 10.0
    """Seconds between progress log lines."""
    producer_linger_ms: int = 50
    """Linger of the worker's producer (summaries, changelog writes): fewer, larger produce requests."""
    analytics_app_id: str | None = None
    """App id of ``sipscope worker --role analytics`` (KPIs, alerts), default ``<app_id>-analytics``."""
    snapshot_s: float = 5.0
    """``--role analytics``: seconds between snapshots of the KPI and anomaly state (input is committed only
    up to the last snapshot, so a restart replays at most this much). A snapshot is the whole state: when one
    takes longer than ``snapshot_s / 20``, the next waits 20 times as long as it took (snapshots then cost at
    most ~5% of the process), up to ``snapshot_max_s``."""
    snapshot_max_s: float = 60.0
    """``--role analytics``: the longest wait between snapshots (see ``snapshot_s``). Input is held in memory
    until a snapshot covers it, and a restart replays what the last snapshot did not cover."""


class WebSettings(BaseModel):
    """``sipscope ui``: the trace web app (``indexers/web/``) and its local users."""

    listen: str = "127.0.0.1:8080"
    """Address and port the app binds to (loopback by default; put a TLS proxy in front to expose it)."""
    users_file: Path = Field(default_factory=lambda: _default_state_dir() / "users.json")
    """Local users: scrypt password hashes and SHA-256 hashes of API tokens (written mode 0600)."""
    secret_key: SecretStr | None = None
    """Key signing the session cookies; when unset one is generated once and kept in ``secret_file``."""
    secret_file: Path = Field(default_factory=lambda: _default_state_dir() / "web-secret")
    """Where the generated session key is kept (mode 0600)."""
    cookie_secure: bool = False
    """Mark the session cookie ``Secure`` (set it when the app is served over https)."""
    session_hours: float = 12.0
    """A login is valid this long."""
    page_size: int = 50
    """Rows per page of the trace table."""
    max_results: int = 1000
    """Most trace rows reachable by paging (and most messages drawn in one ladder); narrow the search beyond."""
    es_timeout_s: float = 15.0
    """Seconds one Elasticsearch request of the app may take before the page says it is not answering."""
    explanations_file: Path = PROJECT_ROOT / "infra" / "web" / "sip-explanations.yaml"
    """Plain-words explanations of response codes, headers and causes shown to support staff (operator-editable)."""


class CapacitySettings(BaseModel):
    """``sipscope capacity``: busy hour, Erlangs and Erlang B circuits per trunk (``streams/capacity.py``)."""

    blocking: float = 0.01
    """Grade of service: the Erlang B blocking probability the circuits are sized for (0.01 = 1 %)."""
    step_min: int = 15
    """Busy-hour windows start every this many minutes (15 = ITU-T E.500 quarter hours, 1 = sliding)."""
    holding: str = "seizure"
    """Holding time counted: ``seizure`` (INVITE to the end, ringing included) or ``answered`` (200 to BYE)."""
    busy_hour: str = "peak"
    """``peak`` (the busiest continuous hour of the data) or ``tcbh`` (time-consistent over the days)."""


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
    kpi: KpiSettings = Field(default_factory=KpiSettings)
    anomaly: AnomalySettings = Field(default_factory=AnomalySettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    capacity: CapacitySettings = Field(default_factory=CapacitySettings)
    web: WebSettings = Field(default_factory=WebSettings)
    correlation_headers: list[str] = ["X-CID", "P-Charging-Vector", "Session-ID", "X-Call-ID"]
    """Headers, in order of preference, whose value links the legs of one call through a B2BUA/SBC."""
    hep_auth_key: SecretStr | None = None
    """When set, the HEP collector requires this auth key (HEPv3 chunk 0x000e) on every packet."""
    metrics_port: int = 0
    """Port of the Prometheus metrics endpoint of long-running commands (0 = off; bound to loopback)."""
    metrics_host: str = "127.0.0.1"
    gc_young_threshold: int = 10_000
    """Allocations between two young-generation collections of Python's garbage collector in the ``sipscope``
    commands (Python's default: 700). The stages keep many long-lived objects (open calls, their messages,
    buffers) that every older-generation collection traverses again; collecting less often saves about a
    fifth of the correlation engine's CPU (docs/benchmarks.md) for a few MB. 0 keeps Python's default."""
    batch_gc_young_threshold: int = 200_000
    """The same for ``sipscope analyze``, one pass over a whole capture: its calls live for thousands of
    messages, so a rarer collection finds more of them already closed and freed. Against 10,000: the
    60 s carrier mix 6.3 -> 5.9 CPU s, the 180 s one 36.3 -> 31.2 s (collector 3.0 -> 0.7 s), same peak memory.
    The Faust worker was slower with 200,000 (16,420-17,921 against 19,157-20,161 msgs per CPU-second,
    ``bench_worker`` alternating), hence two settings. 0 keeps the commands' ``gc_young_threshold``."""
    log_level: str = "INFO"
    log_json: bool = True
    """Structured JSON logs on stderr (set false for human-readable console logs)."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
