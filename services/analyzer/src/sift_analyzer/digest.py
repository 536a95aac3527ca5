"""Entity digests: one LLM digest per (entity, digest type) however many refreshes arrive.

    last success younger than the interval, nothing new  → skip: the stored digest stands
    lock (entity, digest type) held                       → leave a "pending" mark, ack
    otherwise → TOP-K documents nearest the entity's mean vector → LLM → publish → record

A burst of refreshes coalesces on the lock: while one worker digests, the others mark the
work pending and ack; the holder, once it released the lock, takes the mark and checks again
(another digest only if documents were linked since its own). So N refreshes give one digest,
and a refresh arriving mid-digest is never lost into the retry ladder's limits. If the holder
dies, its lease expires and the next (or the scheduled) refresh takes over.
"Nothing new" means every document the refresh names is in the last digest or was stored
before it (for a refresh without ids: no document linked to the entity was stored since).
"""

import logging
from datetime import timedelta

from redis.asyncio import Redis

from sift_analyzer import core
from sift_analyzer.analysis import LockOptions, Publish, event_id_for
from sift_analyzer.cache import ResultCache
from sift_analyzer.digest_store import ContextDocument, DigestStore
from sift_analyzer.llm import OutputFailedError, StructuredLlm
from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.profiles import DigestProfile
from sift_common.contracts import EntityDigested, EntityRefresh
from sift_common.errors import InvalidMessageError
from sift_common.locks import Lease, LeaseLock
from sift_common.skip import AnalysisStateRepository, Clock, should_skip, utc_now

logger = logging.getLogger(__name__)


def digest_messages(
    profile: DigestProfile, refresh: EntityRefresh, documents: list[ContextDocument]
) -> core.Messages:
    limit = profile.max_document_chars
    listed = "\n".join(
        f"{n}. {(doc.title + ': ') if doc.title else ''}{doc.body[:limit]}"
        for n, doc in enumerate(documents, 1)
    )
    entity = refresh.entity
    label = f"{entity.name} ({entity.kind}{', ' + entity.ticker if entity.ticker else ''})"
    prompt = profile.template.format(entity=label, documents=listed)
    return [{"role": "system", "content": profile.system}, {"role": "user", "content": prompt}]


class EntityDigester:
    def __init__(
        self,
        *,
        profile: DigestProfile,
        llm: StructuredLlm,
        redis: Redis,
        state: AnalysisStateRepository,
        cache: ResultCache[EntityDigested],
        store: DigestStore,
        publish: Publish,
        metrics: AnalyzerMetrics,
        locks: LockOptions,
        interval: timedelta,
        top_k: int,
        clock: Clock = utc_now,
    ) -> None:
        self._profile, self._llm, self._redis = profile, llm, redis
        self._state, self._cache, self._store, self._publish = state, cache, store, publish
        self._metrics, self._locks = metrics, locks
        self._interval, self._top_k, self._clock = interval, top_k, clock

    def work_key(self, refresh: EntityRefresh) -> str:
        p = self._profile
        return f"digest:{refresh.entity.key}:{p.digest_type}:{p.prompt_version}"

    async def handle(self, refresh: EntityRefresh) -> None:
        key = self.work_key(refresh)
        if await self._fresh(key, refresh):
            return
        lock = LeaseLock(self._redis, f"{self._locks.prefix}sift:lock:{key}", self._locks.lease_ms)
        pending = f"{self._locks.prefix}sift:pending:{key}"
        lease = await lock.acquire(0)
        if lease is None:
            # Mark first, then try once more: either the holder is still there and will see
            # the mark after its release, or it has gone and this worker digests instead.
            await self._redis.set(pending, "1", px=4 * self._locks.lease_ms)
            lease = await lock.acquire(0)
            if lease is None:
                self._metrics.lock_contention.labels("digest").inc()
                self._metrics.skips.labels("digest", "coalesced").inc()
                self._metrics.analyses.labels(
                    f"digest:{self._profile.digest_type}", "skipped"
                ).inc()
                logger.info("digest under way elsewhere; coalesced", extra={"work_key": key})
                return
        while lease is not None:
            async with lease:
                if not await self._fresh(key, refresh):
                    await self._digest(refresh, key, lease)
            if not await self._redis.getdel(pending):
                return
            # Refreshes came in meanwhile: judge them as "anything linked since the digest".
            refresh = refresh.model_copy(update={"new_document_ids": []})
            if await self._fresh(key, refresh):
                return
            lease = await lock.acquire(0)

    async def _fresh(self, key: str, refresh: EntityRefresh) -> bool:
        """Whether the stored digest stands (logged and counted as a skip)."""
        state = await self._state.get(key)
        if state is None or state.last_success_at is None:
            return False
        if not should_skip(state, self._interval, self._clock()):
            return False
        last = await self._cache.get(key)
        included = set(last.document_ids) if last is not None else set()
        unseen = sorted(set(refresh.new_document_ids) - included)
        if refresh.new_document_ids:
            new = await self._store.stored_since(unseen, state.last_success_at)
        else:
            new = await self._store.linked_since(refresh.entity, state.last_success_at)
        if new:
            return False
        self._metrics.skips.labels("digest", "fresh").inc()
        self._metrics.analyses.labels(f"digest:{self._profile.digest_type}", "skipped").inc()
        logger.info(
            "digest is fresh and nothing new arrived; reusing it",
            extra={"work_key": key, "result_ref": state.result_ref},
        )
        return True

    async def _digest(self, refresh: EntityRefresh, key: str, lease: Lease) -> None:
        label = f"digest:{self._profile.digest_type}"
        documents = await self._store.top_k(refresh.entity, self._top_k)
        if not documents:
            self._metrics.skips.labels("digest", "no_documents").inc()
            logger.info("no embedded documents for the entity yet", extra={"work_key": key})
            return
        await self._state.record_attempt(key, lease.fencing_token)
        try:
            answer = await self._llm.ask(
                self._profile,
                label.replace(":", "_"),
                digest_messages(self._profile, refresh, documents),
                # Long prompts that no reader waits on: documents go first.
                priority="backfill",
                request_id=f"{refresh.entity.key[:40]}:digest",
            )
        except OutputFailedError as exc:
            await self._state.record_failure(key, lease.fencing_token, str(exc))
            self._metrics.analyses.labels(label, "failed").inc()
            raise InvalidMessageError(f"digest failed: {exc}") from exc
        lease.check()
        result = answer.result
        details = {k: v for k, v in result.items() if k != self._profile.summary_field}
        digested = EntityDigested(
            event_id=event_id_for(f"{key}:{lease.fencing_token}"),
            correlation_id=refresh.entity.key,
            entity=refresh.entity,
            digest_type=self._profile.digest_type,
            prompt_version=self._profile.prompt_version,
            model=answer.model,
            summary=str(result[self._profile.summary_field]),
            score=core.overall_score(self._profile, result),
            details=details,
            document_ids=[doc.id for doc in documents],
        )
        await self._publish(digested)
        ref = await self._cache.put(key, digested)
        await self._state.record_success(key, lease.fencing_token, ref)
        self._metrics.analyses.labels(label, "succeeded").inc()
        logger.info("digest published", extra={"work_key": key, "documents": len(documents)})
