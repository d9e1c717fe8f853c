"""Prometheus metrics of the indexer (default registry; served by ``sipscope index`` when
``SIPSCOPE_METRICS_PORT`` is set). Docs/s is ``rate(sipscope_indexer_docs_total[1m])``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DOCS = Counter("sipscope_indexer_docs_total", "Documents Elasticsearch accepted, by index family.", ["family"])
REJECTED = Counter(
    "sipscope_indexer_rejected_total",
    "Records sent to sip.rejected instead of being indexed, by stable reason.", ["family", "reason"],
)
RETRIES = Counter(
    "sipscope_indexer_retries_total",
    "Bulk attempts repeated because Elasticsearch was down or pushed back, by cause.", ["cause"],
)
BATCH_SECONDS = Histogram(
    "sipscope_indexer_batch_seconds", "Time from a batch's first bulk request until Elasticsearch accepted all of it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
BATCH_DOCS = Histogram(
    "sipscope_indexer_batch_docs", "Records per batch.", buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
)
LAG = Gauge("sipscope_indexer_lag", "Records not yet committed, per assigned partition.", ["topic", "partition"])
PAUSED = Gauge("sipscope_indexer_paused", "1 while the partitions are paused because Elasticsearch is unavailable.")
COMMITS_FAILED = Counter("sipscope_indexer_commit_failures_total", "Offset commits that failed (records will be redelivered).")
SWEPT = Counter("sipscope_indexer_swept_indices_total", "Daily indices deleted by the retention sweeper.")
