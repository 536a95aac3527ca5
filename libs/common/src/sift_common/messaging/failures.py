"""What to do with a message after its handler ran: the pure failure policy.

capacity refusal       → a delayed-retry queue at least as long as the `Retry-After`, the
                         retry count unchanged: overload is nobody's fault and must not
                         turn a backlog into dead letters
transient failure      → the next delayed-retry queue, until `max_retries` is spent
                         (`sift_common.classify.is_transient`: Redis, PostgreSQL, broker,
                         HTTP and timeout errors included, however deep they were raised)
retries spent          → the dead-letter queue, with the last error
invalid message        → the dead-letter queue at once, with the reason
anything else (a bug)  → the dead-letter queue, loudly logged: never retried hot, never dropped
"""

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, TypeVar

from pydantic import ValidationError

from sift_common.classify import is_transient, overload_of
from sift_common.contracts import Event
from sift_common.errors import InvalidMessageError, OverloadedError
from sift_common.messaging.topology import RETRY_COUNT_HEADER, ConsumerQueue

EventT = TypeVar("EventT", bound=Event)
MAX_REASON_CHARS = 2_000  # headers travel with every message; keep reasons readable, not huge


class Action(Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


class DeadLetterKind(StrEnum):
    INVALID = "invalid"
    RETRIES_EXHAUSTED = "retries_exhausted"
    BUG = "bug"


@dataclass(frozen=True)
class Disposition:
    action: Action
    reason: str | None = None
    kind: DeadLetterKind | None = None
    retry_number: int | None = None  # the retry count the copy carries
    rung: int | None = None  # which delayed-retry queue takes it


def decide(error: BaseException | None, retries_so_far: int, spec: ConsumerQueue) -> Disposition:
    """The disposition of a message whose handler raised `error` (None: it succeeded)."""
    if error is None:
        return Disposition(Action.ACK)
    reason = describe(error)
    if isinstance(error, InvalidMessageError):
        return Disposition(Action.DEAD_LETTER, reason, DeadLetterKind.INVALID)
    overload = overload_of(error)
    if overload is not None:
        rung = _rung_for_overload(overload, retries_so_far, spec)
        return Disposition(Action.RETRY, reason, retry_number=retries_so_far, rung=rung)
    if is_transient(error):
        if retries_so_far < spec.max_retries:
            number = retries_so_far + 1
            return Disposition(
                Action.RETRY, reason, retry_number=number, rung=spec.retry_rung(number)
            )
        exhausted = f"retries exhausted after {retries_so_far} retries; last error: {reason}"
        return Disposition(
            Action.DEAD_LETTER, exhausted[:MAX_REASON_CHARS], DeadLetterKind.RETRIES_EXHAUSTED
        )
    return Disposition(
        Action.DEAD_LETTER, f"unhandled {reason}"[:MAX_REASON_CHARS], DeadLetterKind.BUG
    )


def _rung_for_overload(overload: OverloadedError, retries_so_far: int, spec: ConsumerQueue) -> int:
    """The shortest rung that waits out the `Retry-After` (never shorter than the rung the
    message's own retries reached; the last rung when none is long enough)."""
    floor = spec.retry_rung(max(retries_so_far, 1))
    wanted_ms = (overload.retry_after_s or 0) * 1000
    for rung in range(floor, len(spec.retry_delays_ms)):
        if spec.retry_delays_ms[rung] >= wanted_ms:
            return rung
    return len(spec.retry_delays_ms) - 1


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]


def retries_so_far(headers: dict[str, Any]) -> int:
    """The retry count this service maintains in a header (0 when absent or unreadable)."""
    value = headers.get(RETRY_COUNT_HEADER, 0)
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def decode_event(model: type[EventT], body: bytes) -> EventT:
    """Parse and validate a message body, raising InvalidMessageError with a readable reason."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise InvalidMessageError(f"body is not valid JSON: {errors[0]['msg']}") from exc
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<body>'}: {error['msg']}"
            for error in errors
        )
        raise InvalidMessageError(f"not a valid {model.__name__}: {problems}") from exc
