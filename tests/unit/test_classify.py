"""Infrastructure errors are transient wherever they were raised; refusals and bugs are not."""

import aiormq.exceptions
import asyncpg
import httpx
import pytest
import redis.exceptions
import sqlalchemy.exc
from pydantic import BaseModel, ValidationError

from sift_common.classify import is_transient, overload_of
from sift_common.contracts import DocumentCollected
from sift_common.errors import OverloadedError, TransientError
from sift_common.gateway_client import GatewayOverloadedError
from sift_common.messaging.failures import Action, DeadLetterKind, decide
from sift_common.messaging.topology import ConsumerQueue

SPEC = ConsumerQueue("q", DocumentCollected, retry_delays_ms=(1_000, 5_000, 30_000), max_retries=2)


def _wrapped(error: BaseException) -> sqlalchemy.exc.DBAPIError:
    """What SQLAlchemy raises for a driver error: a DBAPIError whose `orig` is the driver's."""
    try:
        raise sqlalchemy.exc.DBAPIError("SELECT 1", None, error) from error  # type: ignore[arg-type]
    except sqlalchemy.exc.DBAPIError as exc:
        return exc


INFRASTRUCTURE = [
    redis.exceptions.ConnectionError("Connection closed by server."),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    _wrapped(asyncpg.AdminShutdownError("terminating connection")),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached, connection timed out"),
    aiormq.exceptions.ChannelInvalidStateError("writer is None"),
    aiormq.exceptions.AMQPConnectionError("connection lost"),
    httpx.ConnectError("All connection attempts failed"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
]


@pytest.mark.parametrize("error", INFRASTRUCTURE, ids=lambda e: type(e).__name__)
def test_infrastructure_errors_are_retried_not_dead_lettered_as_bugs(error: Exception) -> None:
    assert is_transient(error)
    assert decide(error, 0, SPEC).action is Action.RETRY


def test_an_error_raised_from_an_infrastructure_error_is_transient() -> None:
    error = RuntimeError("cache lookup failed")
    error.__cause__ = redis.exceptions.ConnectionError("gone")  # `raise ... from cause`
    assert is_transient(error)


def test_refusals_and_bugs_are_not_transient() -> None:
    class Model(BaseModel):
        n: int

    with pytest.raises(ValidationError) as invalid:
        Model.model_validate({"n": "x"})
    for error in (
        redis.exceptions.ResponseError("WRONGTYPE"),
        asyncpg.UniqueViolationError("duplicate key"),
        KeyError("score"),
        invalid.value,
    ):
        assert not is_transient(error)
        assert decide(error, 0, SPEC).kind is DeadLetterKind.BUG


def test_a_bug_raised_while_handling_a_connection_error_stays_a_bug() -> None:
    error = KeyError("oops")
    error.__context__ = redis.exceptions.ConnectionError("gone")  # implicit, not a cause
    assert not is_transient(error)


def test_capacity_refusals_wait_out_retry_after_without_spending_retries() -> None:
    busy = GatewayOverloadedError("queue full", retry_after_s=4)
    assert isinstance(busy, TransientError)
    assert overload_of(busy) is busy
    for spent in (0, 2, 7):  # even past max_retries: overload never dead-letters
        disposition = decide(busy, spent, SPEC)
        assert disposition.action is Action.RETRY
        assert disposition.retry_number == spent  # the count the copy carries is unchanged
        assert SPEC.retry_delays_ms[disposition.rung or 0] >= 4_000
    assert decide(OverloadedError("slow down", retry_after_s=600), 0, SPEC).rung == 2
    assert decide(OverloadedError("slow down"), 0, SPEC).rung == 0


def test_plain_transient_errors_still_spend_retries() -> None:
    assert [decide(TransientError("x"), n, SPEC).action for n in range(3)] == [
        Action.RETRY,
        Action.RETRY,
        Action.DEAD_LETTER,
    ]
