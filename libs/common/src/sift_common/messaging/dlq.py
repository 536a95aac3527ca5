"""Dead letters, read: what a DLQ message says about itself, and which ones a command selects.

Pure logic of `sift dlq`; the broker I/O is in `dlq_broker`, the command line in `dlq_cli`.

A message reaches a DLQ two ways. The consumer (`consumer._settle`) publishes a copy carrying
the reason, kind, original queue and time in `x-sift-*` headers. The broker dead-letters a
message that exceeded its queue's delivery limit (it kept killing its consumer): no sift
headers, but RabbitMQ's `x-death` / `x-first-death-*`; its kind reads `broker` here and its
original queue is the DLQ's name without `.dlq`.
"""

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sift_common.messaging.failures import DeadLetterKind
from sift_common.messaging.topology import (
    DEAD_LETTER_KIND_HEADER,
    DEAD_LETTER_REASON_HEADER,
    LAST_ERROR_HEADER,
    ORIGINAL_QUEUE_HEADER,
    RETRY_COUNT_HEADER,
    ConsumerQueue,
    Topology,
)

DEAD_LETTERED_AT_HEADER = "x-sift-dead-lettered-at"
REPLAYED_HEADER = "x-sift-replayed"
BROKER_KIND = "broker"
UNKNOWN_KIND = "unknown"
KINDS: tuple[str, ...] = (*(kind.value for kind in DeadLetterKind), BROKER_KIND)
DLQ_SUFFIX = ".dlq"

# What a replay leaves behind: the dead-letter record, the retry state (reset: the message
# starts its retry budget afresh) and what the broker adds when it dead-letters or redelivers.
DROPPED_ON_REPLAY = frozenset(
    {
        DEAD_LETTER_REASON_HEADER,
        DEAD_LETTER_KIND_HEADER,
        ORIGINAL_QUEUE_HEADER,
        DEAD_LETTERED_AT_HEADER,
        RETRY_COUNT_HEADER,
        LAST_ERROR_HEADER,
        "x-death",
        "x-delivery-count",
        *(f"x-{when}-death-{what}" for when in ("first", "last")
          for what in ("exchange", "queue", "reason")),
    }
)  # fmt: skip
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ message, as an operator sees it."""

    dlq: str
    message_id: str | None
    correlation_id: str | None  # the document id
    kind: str  # a DeadLetterKind value, `broker` or `unknown`
    reason: str
    original_queue: str
    dead_lettered_at: datetime | None
    retry_count: int
    replayed: int
    body_size: int

    def age(self, now: datetime) -> timedelta | None:
        return None if self.dead_lettered_at is None else now - self.dead_lettered_at

    def as_json(self, now: datetime) -> dict[str, Any]:
        age = self.age(now)
        at = self.dead_lettered_at
        return {
            "dlq": self.dlq,
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "kind": self.kind,
            "reason": self.reason,
            "original_queue": self.original_queue,
            "dead_lettered_at": at.isoformat() if at else None,
            "age_s": round(age.total_seconds(), 1) if age is not None else None,
            "retry_count": self.retry_count,
            "replayed": self.replayed,
            "body_size": self.body_size,
        }


def describe(
    dlq: str,
    headers: Mapping[str, Any],
    *,
    message_id: str | None,
    correlation_id: str | None,
    body_size: int,
) -> DeadLetter:
    """Read a DLQ message's headers (either way it was dead-lettered)."""
    deaths = headers.get("x-death")
    first_death = deaths[0] if isinstance(deaths, list) and deaths else {}  # the latest death
    first_death = first_death if isinstance(first_death, Mapping) else {}
    broker_reason = _text(headers.get("x-first-death-reason") or first_death.get("reason"))
    if DEAD_LETTER_KIND_HEADER in headers:
        kind = _text(headers[DEAD_LETTER_KIND_HEADER])
    else:
        kind = BROKER_KIND if broker_reason else UNKNOWN_KIND
    if DEAD_LETTER_REASON_HEADER in headers:
        reason = _text(headers[DEAD_LETTER_REASON_HEADER])
    else:
        reason = f"broker: {broker_reason}" if broker_reason else "(no reason header)"
    original = headers.get(ORIGINAL_QUEUE_HEADER) or headers.get("x-first-death-queue")
    return DeadLetter(
        dlq=dlq,
        message_id=message_id,
        correlation_id=correlation_id,
        kind=kind,
        reason=reason,
        original_queue=_text(original) if original else dlq.removesuffix(DLQ_SUFFIX),
        dead_lettered_at=_when(headers.get(DEAD_LETTERED_AT_HEADER) or first_death.get("time")),
        retry_count=_count(headers.get(RETRY_COUNT_HEADER)),
        replayed=_count(headers.get(REPLAYED_HEADER)),
        body_size=body_size,
    )


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command acts on; an unset field selects everything."""

    reason: str | None = None  # a substring, case-insensitive
    kind: str | None = None
    older_than: timedelta | None = None
    ids: frozenset[str] = field(default_factory=frozenset)  # message or correlation ids

    def matches(self, letter: DeadLetter, now: datetime) -> bool:
        if self.reason is not None and self.reason.casefold() not in letter.reason.casefold():
            return False
        if self.kind is not None and letter.kind != self.kind:
            return False
        if self.ids and not self.ids & {letter.message_id, letter.correlation_id}:
            return False
        if self.older_than is not None:
            age = letter.age(now)
            return age is not None and age >= self.older_than  # undated: never "old enough"
        return True


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `1h`, `1h30m`, `2d`, `1w` → a timedelta; ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 15m, 1h30m, 2d)")
    total = timedelta()
    for amount, unit in _DURATION.findall(compact):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total


def format_age(age: timedelta | None) -> str:
    """`45s`, `12m`, `3h05m`, `2d04h`; `-` when unknown."""
    if age is None:
        return "-"
    seconds = max(int(age.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def top_reasons(letters: Iterable[DeadLetter], n: int = 3) -> list[tuple[str, int]]:
    return Counter(letter.reason for letter in letters).most_common(n)


def select_queues(topology: Topology, names: Iterable[str]) -> list[ConsumerQueue]:
    """The consumer queues named (bare, namespaced, or by their DLQ); all of them for none.
    ValueError names an unknown queue and the known ones."""
    wanted = list(names)
    if not wanted:
        return list(topology.consumer_queues)
    chosen: list[ConsumerQueue] = []
    for name in wanted:
        spec = next((s for s in topology.consumer_queues if name in _aliases(topology, s)), None)
        if spec is None:
            known = ", ".join(spec.name for spec in topology.consumer_queues)
            raise ValueError(f"unknown queue {name!r}; the queues are: {known}")
        if spec not in chosen:
            chosen.append(spec)
    return chosen


def _aliases(topology: Topology, spec: ConsumerQueue) -> set[str]:
    return {spec.name, topology.work_queue(spec), topology.dead_letter_queue(spec)}


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """A dead letter's headers for its trip back to the work queue: the original ones, minus
    the dead-letter record and the retry state, plus one more replay in `x-sift-replayed`."""
    kept = {key: value for key, value in headers.items() if key not in DROPPED_ON_REPLAY}
    return kept | {REPLAYED_HEADER: _count(headers.get(REPLAYED_HEADER)) + 1}


def plain(value: Any) -> Any:
    """Header values (datetimes, bytes, nested tables) made JSON-serialisable."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def render_body(body: bytes) -> str:
    """A body as pretty JSON when it is JSON, else as text."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        return body.decode(errors="replace")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


def _count(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(_text(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
