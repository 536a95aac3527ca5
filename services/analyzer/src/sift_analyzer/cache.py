"""The result cache in Redis: a finished analysis or digest by work key, with a TTL.

A redelivered document whose analysis succeeded but whose publish was not yet recorded is
re-published from here without an LLM call; `analysis_state.result_ref` names the key.

A paid-for answer must not be thrown away because Redis was unreachable at the moment it
arrived (restarting, failing over, past the client's own retries): `put` then keeps it in
this process for the TTL (at most `local_limit` answers, the oldest dropped first), and `get`
looks there first. The retry of such a message is consumed by this process unless another
replica takes it first; that replica pays for a second call, as it would have without this.
"""

import logging
from typing import Generic, TypeVar

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sift_common.expiring import ExpiringMap

ModelT = TypeVar("ModelT", bound=BaseModel)

logger = logging.getLogger(__name__)

LOCAL_LIMIT = 1024  # answers kept in process while Redis is unreachable


class ResultCache(Generic[ModelT]):
    def __init__(
        self,
        redis: Redis,
        model: type[ModelT],
        *,
        prefix: str,
        ttl_s: int,
        local_limit: int = LOCAL_LIMIT,
    ) -> None:
        self._redis, self._model = redis, model
        self._prefix, self._ttl_s = f"{prefix}sift:result:", ttl_s
        self._local: ExpiringMap[ModelT] = ExpiringMap(ttl_s, local_limit)

    def key(self, work_key: str) -> str:
        return self._prefix + work_key

    @property
    def held_locally(self) -> int:
        """Answers kept in this process because Redis could not take them."""
        return len(self._local)

    async def get(self, work_key: str) -> ModelT | None:
        key = self.key(work_key)
        if (held := self._local.get(key)) is not None:
            return held
        raw = await self._redis.get(key)
        return None if raw is None else self._model.model_validate_json(raw)

    async def put(self, work_key: str, value: ModelT) -> str:
        """Store `value` in Redis, or in this process when Redis cannot take it (logged)."""
        key = self.key(work_key)
        try:
            await self._redis.set(key, value.model_dump_json(), ex=self._ttl_s)
        except RedisError as exc:
            logger.warning(
                "result kept in process: Redis could not take it: %r",
                exc,
                extra={"work_key": work_key},
            )
            self._local.put(key, value)
        return key
