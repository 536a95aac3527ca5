"""Entity digests: one LLM digest per (entity, digest type), when it is worth one.

    no digest yet                                         → digest
    the refresh policy says the stored digest stands      → skip (counted by reason)
    lock (entity, digest type) held                       → leave a "pending" mark, ack
    otherwise → TOP-K documents nearest the entity's mean vector → LLM → publish → record

The policy (refresh_policy) weighs the documents linked to the entity since the last
digest's context was read: their novelty against what that digest saw, a freshness SLA and a
minimum interval. "Since" is on the database's clock: the digest records the database's
now() of its context read (`details.as_of`), and the policy reads the new documents and now()
in one snapshot.

A burst of refreshes coalesces on the lock: while one worker digests, the others mark the
work pending and ack; the holder, once it released the lock, takes the mark and asks the
policy again. So N refreshes give one digest, and a refresh arriving mid-digest is never
lost into the retry ladder's limits. If the holder dies, its lease expires and the next (or
the scheduled) refresh takes over.

The answer is grounded (digest_prompt, grounding): a summary sharing nothing with its
documents is invalid output and gets the one repair turn; the score is held within
`max_score_distance` of the documents' mean, with the model's own score kept in `details`.
"""

import logging
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from sift_analyzer import core, refresh_policy
from sift_analyzer.analysis import LockOptions, Publish, event_id_for
from sift_analyzer.cache import ResultCache
from sift_analyzer.digest_prompt import (
    answer_check,
    answer_details,
    digest_messages,
    mean_score,
)
from sift_analyzer.digest_store import Context, DigestStore
from sift_analyzer.grounding import held_score
from sift_analyzer.llm import Answer, OutputFailedError, StructuredLlm
from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.profiles import DigestProfile
from sift_analyzer.refresh_policy import Decision, RefreshPolicy
from sift_common.contracts import EntityDigested, EntityRefresh
from sift_common.errors import InvalidMessageError
from sift_common.locks import Lease, LeaseLock
from sift_common.skip import AnalysisStateRepository, Clock, WorkState, utc_now

logger = logging.getLogger(__name__)

# Skip reasons as the skips metric names them ("fresh" predates the policy: nothing new).
_SKIP_LABELS = {"nothing_new": "fresh"}


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
        policy: RefreshPolicy,
        top_k: int,
        max_score_distance: float,
        clock: Clock = utc_now,
    ) -> None:
        self._profile, self._llm, self._redis = profile, llm, redis
        self._state, self._cache, self._store, self._publish = state, cache, store, publish
        self._metrics, self._locks, self._policy = metrics, locks, policy
        self._top_k, self._max_distance, self._clock = top_k, max_score_distance, clock

    def work_key(self, refresh: EntityRefresh) -> str:
        p = self._profile
        return f"digest:{refresh.entity.key}:{p.digest_type}:{p.prompt_version}"

    async def handle(self, refresh: EntityRefresh) -> None:
        key = self.work_key(refresh)
        if not (await self._judge(key, refresh)).refresh:
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
                self._count_skip("coalesced")
                logger.info("digest under way elsewhere; coalesced", extra={"work_key": key})
                return
        while lease is not None:
            async with lease:
                decision = await self._judge(key, refresh)
                if decision.refresh:
                    await self._digest(refresh, key, lease, decision)
            # Refreshes came in meanwhile: the policy judges what was linked since.
            if not await self._redis.getdel(pending):
                return
            if not (await self._judge(key, refresh)).refresh:
                return
            lease = await lock.acquire(0)

    async def _judge(self, key: str, refresh: EntityRefresh) -> Decision:
        """The refresh policy's decision on the stored digest (a skip is logged and counted)."""
        state = await self._state.get(key)
        decision = await self._decide(key, refresh, state)
        if decision.refresh:
            return decision
        self._count_skip(_SKIP_LABELS.get(decision.reason, decision.reason))
        logger.info(
            "the stored digest stands",
            extra={
                "work_key": key,
                "reason": decision.reason,
                "unseen": decision.unseen,
                "novelty": round(decision.novelty, 2),
                "result_ref": state.result_ref if state is not None else None,
            },
        )
        return decision

    async def _decide(self, key: str, refresh: EntityRefresh, state: WorkState | None) -> Decision:
        # A failed attempt counts too: an entity whose answers keep failing the checks costs
        # two calls (answer, repair) per minimum interval, not per refresh.
        if state is not None and state.last_error is not None and self._failed_recently(state):
            return Decision(False, "min_interval")
        if state is None or state.last_success_at is None:
            return Decision(True, "first")
        # A digest without a recorded as_of (its cache entry expired) falls back to when its
        # success was recorded (the analyzer's clock, after its LLM call): documents stored
        # during that call go uncounted by the policy, though the next context has them.
        as_of = _as_of(await self._cache.get(key)) or state.last_success_at
        seen = await self._store.observe(refresh.entity, as_of)
        decision = refresh_policy.by_time(self._policy, as_of, seen.now, seen.arrivals)
        if decision is not None:
            return decision
        baseline = await self._store.baseline(refresh.entity, as_of)
        return refresh_policy.decide(self._policy, as_of, seen.now, seen.arrivals, baseline)

    def _failed_recently(self, state: WorkState) -> bool:
        """On the analyzer's clock, as `analysis_state` records attempts."""
        return self._clock() - state.last_attempt_at < self._policy.min_interval

    def _count_skip(self, reason: str) -> None:
        self._metrics.skips.labels("digest", reason).inc()
        self._metrics.analyses.labels(f"digest:{self._profile.digest_type}", "skipped").inc()

    async def _digest(
        self, refresh: EntityRefresh, key: str, lease: Lease, decision: Decision
    ) -> None:
        label = f"digest:{self._profile.digest_type}"
        context = await self._store.top_k(refresh.entity, self._top_k)
        if not context.documents:
            self._metrics.skips.labels("digest", "no_documents").inc()
            logger.info("no embedded documents for the entity yet", extra={"work_key": key})
            return
        self._metrics.digest_refreshes.labels(decision.reason).inc()
        await self._state.record_attempt(key, lease.fencing_token)
        try:
            answer = await self._llm.ask(
                self._profile,
                label.replace(":", "_"),
                digest_messages(self._profile, refresh.entity, context.documents),
                # Long prompts that no reader waits on: documents go first.
                priority="backfill",
                request_id=f"{refresh.entity.key[:40]}:digest",
                sticky_key=refresh.entity.key,
                check=answer_check(self._profile, refresh.entity, context.documents),
            )
        except OutputFailedError as exc:
            await self._state.record_failure(key, lease.fencing_token, str(exc))
            self._metrics.analyses.labels(label, "failed").inc()
            raise InvalidMessageError(f"digest failed: {exc}") from exc
        lease.check()
        if answer.repaired:
            self._metrics.analyses.labels(label, "repaired").inc()
        digested = self._digested(refresh, key, lease, answer, context, decision)
        await self._publish(digested)
        ref = await self._cache.put(key, digested)
        await self._state.record_success(key, lease.fencing_token, ref)
        self._metrics.analyses.labels(label, "succeeded").inc()
        logger.info(
            "digest published",
            extra={"work_key": key, "documents": len(context.documents), "reason": decision.reason},
        )

    def _digested(
        self,
        refresh: EntityRefresh,
        key: str,
        lease: Lease,
        answer: Answer,
        context: Context,
        decision: Decision,
    ) -> EntityDigested:
        result = answer.result
        raw = core.overall_score(self._profile, result)
        mean = mean_score(context.documents)
        score = None if raw is None else held_score(raw, mean, self._max_distance)
        if score != raw:
            self._metrics.digest_score_clamps.inc()
        record: dict[str, Any] = {
            "grounding": {
                "model_score": raw,
                "documents_mean_score": mean,
                "max_distance": self._max_distance,
                "clamped": score != raw,
            },
            "as_of": context.as_of.isoformat() if context.as_of else None,
            "refresh": {
                "reason": decision.reason,
                "novelty": round(decision.novelty, 3),
                "unseen_documents": decision.unseen,
            },
        }
        return EntityDigested(
            event_id=event_id_for(f"{key}:{lease.fencing_token}"),
            correlation_id=refresh.entity.key,
            entity=refresh.entity,
            digest_type=self._profile.digest_type,
            prompt_version=self._profile.prompt_version,
            model=answer.model,
            summary=str(result[self._profile.summary_field]),
            score=score,
            details=answer_details(self._profile, result, record),
            document_ids=[doc.id for doc in context.documents],
        )


def _as_of(digest: EntityDigested | None) -> datetime | None:
    """The database time of the digest's context read, as recorded in its details."""
    value = digest.details.get("as_of") if digest is not None else None
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
