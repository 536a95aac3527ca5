"""The analyzer's two workers, built from its settings and the clients the composition root
owns: `DocumentAnalyzer` (document.collected) and `EntityDigester` (entity.refresh)."""

from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from sift_analyzer.analysis import DocumentAnalyzer, LockOptions, Publish
from sift_analyzer.cache import ResultCache
from sift_analyzer.digest import EntityDigester
from sift_analyzer.digest_store import DigestStore
from sift_analyzer.entities import load_known_entities
from sift_analyzer.llm import StructuredLlm
from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.profiles import load_profiles
from sift_analyzer.settings import AnalyzerSettings
from sift_common.contracts import Analysis, EntityDigested
from sift_common.gateway_client import GatewayClient
from sift_common.skip import AnalysisStateRepository, autocommit_sessions


def build_workers(
    s: AnalyzerSettings,
    *,
    redis: Redis,
    engine: AsyncEngine,
    gateway: GatewayClient,
    store: DigestStore,
    publish: Publish,
    metrics: AnalyzerMetrics,
) -> tuple[DocumentAnalyzer, EntityDigester]:
    profiles = load_profiles(s.analyzer_profiles)
    shared: dict[str, Any] = {
        "llm": StructuredLlm(gateway, metrics),
        "redis": redis,
        "state": AnalysisStateRepository(autocommit_sessions(engine)),
        "publish": publish,
        "metrics": metrics,
        "locks": LockOptions(s.namespace, s.analyzer_lock_lease_ms, s.analyzer_lock_wait_s),
    }
    ttl = s.analyzer_result_ttl_s
    documents = DocumentAnalyzer(
        profiles=profiles,
        cache=ResultCache(redis, Analysis, prefix=s.namespace, ttl_s=ttl),
        stale_after=timedelta(seconds=s.analyzer_stale_after_s),
        known=load_known_entities(s.analyzer_known_entities),
        **shared,
    )
    digests = EntityDigester(
        profile=profiles.digest,
        cache=ResultCache(redis, EntityDigested, prefix=s.namespace, ttl_s=ttl),
        store=store,
        policy=s.refresh_policy,
        top_k=s.analyzer_digest_top_k,
        max_score_distance=s.analyzer_digest_max_score_distance,
        **shared,
    )
    return documents, digests
