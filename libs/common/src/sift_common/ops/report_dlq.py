"""`sift report`'s dead-letter section: read every DLQ the way `sift dlq list` does (each
message taken unacked and put back when the scan ends; nothing is consumed for good) and count
those dead-lettered inside the window, with their top reasons.

The broker being unreachable is part of the answer, not a failure of the report: the section
says so and the rest of the report still prints.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aio_pika.exceptions import AMQPError

from sift_common.errors import ConfigError
from sift_common.messaging import dlq_broker
from sift_common.messaging.dlq import DeadLetter, Selection
from sift_common.messaging.topology import Topology
from sift_common.settings import RabbitSettings, load_settings

TOP_REASONS = 5


@dataclass
class DeadLetterSection:
    """`error` set: the broker could not be read, and the counts are unknown."""

    error: str | None = None
    queues: list[dict[str, Any]] = field(default_factory=list)
    in_window: int = 0
    undated: int = 0  # dead letters without a time: cannot say whether they are in the window
    top_reasons: list[tuple[str, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "available": self.error is None,
            "error": self.error,
            "queues": self.queues,
            "dead_lettered": self.in_window,
            "undated": self.undated,
            "top_reasons": [{"reason": r, "count": n} for r, n in self.top_reasons],
        }


async def dead_letters(since: datetime, now: datetime, limit: int) -> DeadLetterSection:
    """The DLQs' depths and what reached them since `since`; an unreachable broker or a bad
    SIFT_RABBIT_URL / SIFT_NAMESPACE gives a section that says why."""
    try:
        settings = load_settings(RabbitSettings)
    except ConfigError as exc:
        return DeadLetterSection(error=str(exc))
    topology = Topology(settings.namespace)
    try:
        reports = await dlq_broker.inspect(
            str(settings.rabbit_url),
            topology,
            topology.consumer_queues,
            Selection(),
            limit=limit,
            now=now,
        )
    except (AMQPError, OSError, TimeoutError) as exc:
        return DeadLetterSection(error=f"cannot reach RabbitMQ: {exc!r}")
    section = DeadLetterSection()
    reasons: Counter[str] = Counter()
    for report in reports:
        recent = [letter for letter in report.matched if _in_window(letter, since)]
        section.undated += sum(1 for letter in report.matched if letter.dead_lettered_at is None)
        section.in_window += len(recent)
        reasons.update(letter.reason for letter in recent)
        section.queues.append(
            {
                "queue": report.queue,
                "dlq": report.dlq,
                "depth": report.depth,
                "dead_lettered": len(recent),
            }
        )
    section.top_reasons = reasons.most_common(TOP_REASONS)
    return section


def _in_window(letter: DeadLetter, since: datetime) -> bool:
    return letter.dead_lettered_at is not None and letter.dead_lettered_at >= since
