"""Document analysis, exactly-once in effect.

    already recorded as published (analysis_state)   → skip: ack, no LLM call, no publish
    lock (document, analysis type, prompt version)    → busy: transient, back via the ladder
    result cached but not recorded as published       → re-publish it, no LLM call
    otherwise                                          → LLM (one repair), cache, publish, record

The success is recorded only after the publish is confirmed, so a crash at any point leaves
either a re-publish from the cache or a fresh analysis, never a lost document. The published
event's id is derived from the work key, so downstream can drop a re-publish as a duplicate.
"""

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from redis.asyncio import Redis

from sift_analyzer import core
from sift_analyzer.cache import ResultCache
from sift_analyzer.entities import KnownEntities
from sift_analyzer.llm import OutputFailedError, StructuredLlm
from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.profiles import DocumentProfile, Profiles
from sift_common.contracts import Analysis, DocumentAnalyzed, DocumentCollected, Event
from sift_common.errors import InvalidMessageError
from sift_common.locks import Lease, LeaseLock, LockBusyError
from sift_common.skip import AnalysisStateRepository, Clock, utc_now

logger = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class LockOptions:
    prefix: str
    lease_ms: int
    wait_s: float


def event_id_for(work_key: str) -> str:
    return hashlib.sha256(work_key.encode()).hexdigest()[:32]


class DocumentAnalyzer:
    def __init__(
        self,
        *,
        profiles: Profiles,
        llm: StructuredLlm,
        redis: Redis,
        state: AnalysisStateRepository,
        cache: ResultCache[Analysis],
        publish: Publish,
        metrics: AnalyzerMetrics,
        locks: LockOptions,
        stale_after: timedelta,
        known: KnownEntities,
        clock: Clock = utc_now,
    ) -> None:
        self._profiles, self._llm, self._redis = profiles, llm, redis
        self._known = known
        self._state, self._cache, self._publish = state, cache, publish
        self._metrics, self._locks = metrics, locks
        self._stale_after, self._clock = stale_after, clock

    async def handle(self, event: DocumentCollected) -> None:
        profile = self._profiles.for_kind(event.document.kind)
        key = core.work_key(event.document.id, profile.analysis_type, profile.prompt_version)
        if await self._published(key, profile):
            return
        lock = LeaseLock(self._redis, f"{self._locks.prefix}sift:lock:{key}", self._locks.lease_ms)
        lease = await lock.acquire(self._locks.wait_s)
        if lease is None:
            self._metrics.lock_contention.labels("analysis").inc()
            raise LockBusyError(f"{key} is being analysed by another worker")
        async with lease:
            await self._under_lock(event, profile, key, lease)

    async def _published(self, key: str, profile: DocumentProfile) -> bool:
        state = await self._state.get(key)
        if state is None or state.last_success_at is None:
            return False
        self._metrics.skips.labels("analysis", "already_published").inc()
        self._metrics.analyses.labels(profile.analysis_type, "skipped").inc()
        logger.info("already analysed and published; skipped", extra={"work_key": key})
        return True

    async def _under_lock(
        self, event: DocumentCollected, profile: DocumentProfile, key: str, lease: Lease
    ) -> None:
        if await self._published(key, profile):
            return
        cached = await self._cache.get(key)
        if cached is not None:
            await self._emit(event, cached, key, lease)
            self._metrics.skips.labels("analysis", "cached_result").inc()
            self._metrics.analyses.labels(profile.analysis_type, "republished").inc()
            logger.info("re-published the cached analysis", extra={"work_key": key})
            return
        await self._state.record_attempt(key, lease.fencing_token)
        analysis = await self._analyse(event, profile, key, lease)
        # Cached before the lease check: a lease lost to a Redis restart or a slow call must
        # not throw the paid-for answer away; the retry re-publishes it without an LLM call.
        await self._cache.put(key, analysis)
        lease.check()  # a taken-over lease must not publish: the new holder will
        await self._emit(event, analysis, key, lease)
        self._metrics.analyses.labels(profile.analysis_type, "succeeded").inc()
        logger.info(
            "analysis published",
            extra={
                "work_key": key,
                "analysis_type": profile.analysis_type,
                "score": analysis.score,
            },
        )

    async def _analyse(
        self, event: DocumentCollected, profile: DocumentProfile, key: str, lease: Lease
    ) -> Analysis:
        document = event.document
        priority = core.gateway_priority(
            event.priority, document.published_at, self._clock(), self._stale_after
        )
        try:
            answer = await self._llm.ask(
                profile,
                profile.analysis_type,
                core.document_messages(profile, document),
                priority=priority,
                request_id=f"{document.id[:16]}:{profile.analysis_type}",
                sticky_key=document.id,  # one document, one arm of an A/B split
            )
        except OutputFailedError as exc:
            await self._state.record_failure(key, lease.fencing_token, str(exc))
            self._metrics.analyses.labels(profile.analysis_type, "failed").inc()
            raise InvalidMessageError(f"analysis failed: {exc}") from exc
        if answer.repaired:
            self._metrics.analyses.labels(profile.analysis_type, "repaired").inc()
        analysis, refused = core.analysis_of(
            profile,
            document,
            answer.result,
            answer.model,
            self._known,
            gateway_profile=answer.profile,
            repaired=answer.repaired,
        )
        for reason, count in refused.items():
            self._metrics.mentions_refused.labels(profile.analysis_type, reason).inc(count)
        return analysis

    async def _emit(
        self, event: DocumentCollected, analysis: Analysis, key: str, lease: Lease
    ) -> None:
        analyzed = DocumentAnalyzed(
            event_id=event_id_for(key),
            correlation_id=event.document.id,
            document=event.document,
            analysis=analysis,
            fencing_token=lease.fencing_token,  # the store keeps the newest holder's analysis
        )
        await self._publish(analyzed)  # returns once the broker confirmed it
        await self._state.record_success(key, lease.fencing_token, self._cache.key(key))
