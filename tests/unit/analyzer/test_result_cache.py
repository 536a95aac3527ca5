"""The result cache when Redis cannot take an answer: a Redis client aimed at a port nobody
listens on (a real refused connection), so every write fails as during an outage."""

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from sift_analyzer.cache import ResultCache
from sift_common.contracts import Analysis
from tests.support.gateway import free_port


def analysis(score: int) -> Analysis:
    return Analysis(
        analysis_type="news", prompt_version="v1", model="m", score=score, result={"s": score}
    )


def unreachable() -> Redis:
    return Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)


async def test_an_answer_redis_cannot_take_is_kept_in_process_and_read_back() -> None:
    cache = ResultCache(unreachable(), Analysis, prefix="t.", ttl_s=60)
    key = await cache.put("work-1", analysis(70))
    assert key == "t.sift:result:work-1"
    assert cache.held_locally == 1
    assert await cache.get("work-1") == analysis(70)  # no Redis round trip needed


async def test_the_local_copies_are_bounded_oldest_first_and_expire_with_the_ttl() -> None:
    cache = ResultCache(unreachable(), Analysis, prefix="t.", ttl_s=1, local_limit=2)
    for n in range(3):
        await cache.put(f"work-{n}", analysis(n))
    assert cache.held_locally == 2
    assert await cache.get("work-2") == analysis(2)
    with pytest.raises(RedisConnectionError):  # the oldest went: the read falls to Redis
        await cache.get("work-0")
    await asyncio.sleep(1.1)
    assert cache.held_locally == 0
