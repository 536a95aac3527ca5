"""Prometheus metrics of the scheduled sources, registered on the registry passed in."""

from prometheus_client import CollectorRegistry, Counter, Gauge


class SourceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = Counter(
            "sift_collector_polls",
            "Source polls by outcome (ok, not_modified, error)",
            ["source", "outcome"],
            registry=registry,
        )
        self.documents = Counter(
            "sift_collector_source_documents",
            "Documents from scheduled sources by outcome (published, duplicate, rejected)",
            ["source", "outcome"],
            registry=registry,
        )
        self.failures = Gauge(
            "sift_collector_source_consecutive_failures",
            "Consecutive failed polls of a source (0 when its last poll succeeded)",
            ["source"],
            registry=registry,
        )
