"""The service's own Prometheus metrics, beside the instrumentator's HTTP ones.

The index's figures are read from the store when /metrics is scraped, never kept in step.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.service import SearchService

# A search takes milliseconds (keyword) to a few hundred (a long query on a busy encoder).
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def search_latency(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "search_query_duration_seconds",
        "Time to answer a search request (batches: mode=batch), excluding HTTP.",
        ["mode"],
        buckets=_LATENCY_BUCKETS,
        registry=registry,
    )


class IndexCollector(Collector):
    """The open index and the writes the service made, at scrape time."""

    def __init__(self, service: SearchService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        writes = CounterMetricFamily(
            "search_writes", "Documents written or deleted, by outcome.", labels=["outcome"]
        )
        for outcome, count in self.service.write_counts().items():
            writes.add_metric([outcome], count)
        yield writes
        store = self.service.store
        if store is None:
            return
        reader = store.reader()
        yield GaugeMetricFamily(
            "search_index_documents", "Documents searches see.", value=reader.document_count
        )
        yield GaugeMetricFamily(
            "search_index_passages", "Passages searches see.", value=reader.passage_count
        )
        yield GaugeMetricFamily(
            "search_index_seq",
            "The index version: the sequence number of the last write searches see.",
            value=reader.seq,
        )
        yield GaugeMetricFamily(
            "search_index_build_timestamp_seconds",
            "When the version served was written (the build, or the merge that replaced it).",
            value=store.manifest.built_at.timestamp(),
        )
        for metric in store.metrics():
            family = CounterMetricFamily if metric.counter else GaugeMetricFamily
            yield family(metric.name, metric.help, value=metric.value)
