"""Which failures are transient: the one place that knows the libraries underneath.

A Redis failover, a PostgreSQL restart or a broker blip surfaces as that library's own
exception (`redis.ConnectionError`, asyncpg's `ConnectionDoesNotExistError`, SQLAlchemy's
`OperationalError`, aiormq's `ChannelInvalidStateError`, ...), usually from deep inside a lock,
a cache or a query. Wrapping every call site in `TransientError` would miss some; so every
consumer's failure policy asks `is_transient` instead, which also looks down the chain of
explicit causes (`raise ... from`: SQLAlchemy wraps the driver's error that way). Only
explicit causes: a bug raised while handling a connection error is still a bug.

Not transient on purpose: a refused command or query (Redis `ResponseError`, a PostgreSQL
data or constraint error) and a pydantic `ValidationError`: retrying the same work cannot help.
"""

import aiormq.exceptions
import asyncpg
import httpx
import redis.exceptions
import sqlalchemy.exc

from sift_common.errors import OverloadedError, TransientError

_MAX_CAUSE_DEPTH = 8

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    OSError,  # ConnectionError and every socket error; aiormq's connection errors too
    TimeoutError,  # asyncio.timeout and wait_for; asyncio.TimeoutError is this class
    redis.exceptions.ConnectionError,  # BusyLoadingError, MaxConnectionsError included
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica promoted mid-failover still refuses writes
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
    sqlalchemy.exc.OperationalError,  # the driver lost its server (wrapped)
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection freed in time
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed", "another operation is in progress"
    asyncpg.InternalClientError,  # a connection killed mid-protocol ("cannot switch to state")
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,  # statement_timeout
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.LockNotAvailableError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.AMQPChannelError,  # a channel closed under a publish or an ack
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.DeliveryError,  # publish refused: a full queue (reject-publish)
    httpx.TransportError,  # connect errors, timeouts, broken connections
)


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its explicit causes, nearest first."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(seen) < _MAX_CAUSE_DEPTH and current not in seen:
        seen.append(current)
        wrapped = current.orig if isinstance(current, sqlalchemy.exc.DBAPIError) else None
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return seen


def is_transient(error: BaseException) -> bool:
    """Whether the same work may succeed if tried again later."""
    return any(
        isinstance(link, INFRASTRUCTURE_ERRORS)
        or (isinstance(link, sqlalchemy.exc.DBAPIError) and link.connection_invalidated)
        for link in _chain(error)
    )


def overload_of(error: BaseException) -> OverloadedError | None:
    """The capacity refusal behind `error`, if that is what it is (it spends no retries)."""
    for link in _chain(error):
        if isinstance(link, OverloadedError):
            return link
    return None
