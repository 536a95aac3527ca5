"""Readiness checks of the dependencies several services share: RabbitMQ and Redis.

Each is bounded by the timeout `Readiness` gives it; the broker's ping gets the same limit so
FastStream gives up on its own rather than being cancelled."""

from faststream.rabbit import RabbitBroker
from redis.asyncio import Redis

from sift_common.service.readiness import DEFAULT_TIMEOUT_S, Check, NotReady


def broker_check(broker: RabbitBroker, timeout_s: float = DEFAULT_TIMEOUT_S) -> Check:
    """The broker's connection is up (FastStream's `ping`)."""

    async def connected() -> None:
        if not await broker.ping(timeout=timeout_s):
            raise NotReady("the connection is down")

    return connected


def redis_check(redis: Redis) -> Check:
    """Redis answers `PING`."""

    async def pong() -> None:
        await redis.ping()

    return pong
