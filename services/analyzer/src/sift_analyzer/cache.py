"""The result cache in Redis: a finished analysis or digest by work key, with a TTL.

A redelivered document whose analysis succeeded but whose publish was not yet recorded is
re-published from here without an LLM call; `analysis_state.result_ref` names the key.
"""

from typing import Generic, TypeVar

from pydantic import BaseModel
from redis.asyncio import Redis

ModelT = TypeVar("ModelT", bound=BaseModel)


class ResultCache(Generic[ModelT]):
    def __init__(self, redis: Redis, model: type[ModelT], *, prefix: str, ttl_s: int) -> None:
        self._redis, self._model = redis, model
        self._prefix, self._ttl_s = f"{prefix}sift:result:", ttl_s

    def key(self, work_key: str) -> str:
        return self._prefix + work_key

    async def get(self, work_key: str) -> ModelT | None:
        raw = await self._redis.get(self.key(work_key))
        return None if raw is None else self._model.model_validate_json(raw)

    async def put(self, work_key: str, value: ModelT) -> str:
        key = self.key(work_key)
        await self._redis.set(key, value.model_dump_json(), ex=self._ttl_s)
        return key
