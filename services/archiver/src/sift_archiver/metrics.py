"""The archiver's Prometheus metrics, in a registry of its own (one per app instance)."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class ArchiverMetrics:
    batch_size: Histogram
    embed_seconds: Histogram
    commit_seconds: Histogram
    rows_written: Counter
    batches: Counter
    refused_documents: Counter
    fenced_out: Counter
    digests: Counter
    refreshes: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> "ArchiverMetrics":
        return cls(
            batch_size=Histogram(
                "sift_archiver_batch_size", "Documents per stored batch", buckets=_SIZES,
                registry=registry,
            ),
            embed_seconds=Histogram(
                "sift_archiver_embed_seconds", "Gateway embeddings call per batch",
                buckets=_SECONDS, registry=registry,
            ),
            commit_seconds=Histogram(
                "sift_archiver_commit_seconds", "Store transaction per batch, commit included",
                buckets=_SECONDS, registry=registry,
            ),
            rows_written=Counter(
                "sift_archiver_rows_written", "Rows upserted, by table", ["table"],
                registry=registry,
            ),
            batches=Counter(
                "sift_archiver_batches", "Batches by outcome: stored, partial (some documents "
                "failed), failed", ["outcome"], registry=registry,
            ),
            refused_documents=Counter(
                "sift_archiver_refused_documents",
                "Documents the store or the gateway refused alone (dead-lettered)",
                registry=registry,
            ),
            fenced_out=Counter(
                "sift_archiver_fenced_out",
                "Analyses not written: the store holds one with a higher lease fencing token",
                registry=registry,
            ),
            digests=Counter("sift_archiver_digests_stored", "Digests stored", registry=registry),
            refreshes=Counter(
                "sift_archiver_entity_refresh_published", "entity.refresh events published",
                registry=registry,
            ),
        )  # fmt: skip
