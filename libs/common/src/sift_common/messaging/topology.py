"""Names and shapes of every exchange and queue, declared idempotently by each service.

One durable topic exchange carries every event. Each consumer owns a quorum work queue whose
broker-side dead-lettering (delivery limit exceeded, e.g. a message that keeps killing its
consumer) goes to a direct dead-letter exchange and on to the queue's DLQ. Delayed retries go
through a ladder of TTL queues that dead-letter back into the work queue via the default
exchange, so a retried message reaches only the consumer that failed it.

A consumer puts a message it retries or gives up on into one of its own retry queues or its DLQ
through a third exchange, the topic exchange `sift.retry`, where each of those queues is bound
by its own name: unlike the default exchange (which reaches every queue), a topic exchange lets
the broker limit each service to its own queues' names (topic permissions, privileges.py).

Every queue that dead-letters does so at least once (`x-dead-letter-strategy: at-least-once`,
which needs `x-overflow: reject-publish`): by default a quorum queue dead-letters at most once,
and a message expiring from a retry queue or passing the delivery limit during a leader change
or a memory alarm could vanish. Queue arguments cannot change in place: a broker holding queues
declared by an older Sift is moved over by `sift queues migrate` (queue_migration.py).
"""

from dataclasses import dataclass, field
from typing import Any, Generic, cast

from typing_extensions import TypeVar

from sift_common.contracts import (
    DocumentAnalyzed,
    DocumentCollected,
    DocumentSubmitted,
    EntityDigested,
    EntityRefresh,
    Event,
)

RETRY_COUNT_HEADER = "x-sift-retry-count"
LAST_ERROR_HEADER = "x-sift-last-error"
DEAD_LETTER_REASON_HEADER = "x-sift-dead-letter-reason"
DEAD_LETTER_KIND_HEADER = "x-sift-dead-letter-kind"
ORIGINAL_QUEUE_HEADER = "x-sift-original-queue"

DEFAULT_RETRY_DELAYS_MS: tuple[int, ...] = (5_000, 30_000, 300_000)
# Dead-letter at least once: the source queue keeps a message until its dead-letter target
# confirmed it. A full target makes the source refuse new publishes instead of dropping.
AT_LEAST_ONCE: dict[str, str] = {
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


# The event a queue carries. Covariant, so a `ConsumerQueue[DocumentCollected]` is a
# `ConsumerQueue` (of `Event`) wherever any queue will do.
EventT_co = TypeVar("EventT_co", bound=Event, default=Event, covariant=True)
EventT = TypeVar("EventT", bound=Event)


@dataclass(frozen=True)
class ConsumerQueue(Generic[EventT_co]):
    """One consumer's work queue: its name (without namespace) and the event class it takes.

    The queue is bound to the event's `ROUTING_KEY`, and the reliable consumer decodes every
    message as that class: one declaration joins the two, not a pair of equal strings."""

    name: str
    event: type[EventT_co]
    retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS
    max_retries: int = 5
    delivery_limit: int = 10

    def __post_init__(self) -> None:
        if not self.retry_delays_ms or min(self.retry_delays_ms) <= 0:
            raise ValueError(f"{self.name}: retry delays must be positive and not empty")
        if self.max_retries < 0 or self.delivery_limit < 1:
            raise ValueError(f"{self.name}: max_retries >= 0 and delivery_limit >= 1 required")

    @property
    def routing_key(self) -> str:
        """The routing key the work queue is bound by: its event's."""
        return self.event.ROUTING_KEY

    @property
    def consumer(self) -> str:
        """The service that owns the queue: the first part of its name."""
        return self.name.split(".", 1)[0]

    def retry_delay_ms(self, retry_number: int) -> int:
        """Delay before retry number `retry_number` (1-based); the last rung repeats."""
        return self.retry_delays_ms[min(retry_number, len(self.retry_delays_ms)) - 1]

    def retry_rung(self, retry_number: int) -> int:
        """Index of the retry queue that holds retry number `retry_number`."""
        return min(retry_number, len(self.retry_delays_ms)) - 1


COLLECTOR_INTAKE = ConsumerQueue("collector.intake", DocumentSubmitted)
ANALYZER_DOCUMENTS = ConsumerQueue("analyzer.documents", DocumentCollected)
ANALYZER_ENTITY_REFRESH = ConsumerQueue("analyzer.entity-refresh", EntityRefresh)
ARCHIVER_DOCUMENTS = ConsumerQueue("archiver.documents", DocumentAnalyzed)
ARCHIVER_DIGESTS = ConsumerQueue("archiver.digests", EntityDigested)

ALL_CONSUMER_QUEUES: tuple[ConsumerQueue, ...] = (
    COLLECTOR_INTAKE,
    ANALYZER_DOCUMENTS,
    ANALYZER_ENTITY_REFRESH,
    ARCHIVER_DOCUMENTS,
    ARCHIVER_DIGESTS,
)

UPSTREAM = "upstream"  # publishers outside Sift that speak AMQP
# Who publishes each event: the other half of the flow, next to the queues that name their
# consumers. The event-flow table and every service's AsyncAPI document are generated from
# both (catalog.py, asyncapi.py); a test fails when a queue's event has no producer here.
PRODUCERS: dict[type[Event], tuple[str, ...]] = {
    DocumentSubmitted: (UPSTREAM,),
    DocumentCollected: ("collector",),
    DocumentAnalyzed: ("analyzer",),
    EntityRefresh: ("archiver",),  # after a commit that linked new documents, and on schedule
    EntityDigested: ("analyzer",),
}


@dataclass(frozen=True)
class QueueDeclaration:
    name: str
    arguments: dict[str, Any]
    bindings: tuple[tuple[str, str], ...] = ()  # (exchange, routing key) pairs


@dataclass(frozen=True)
class Topology:
    """Concrete names under a namespace (empty in production; unique per test)."""

    namespace: str = ""
    consumer_queues: tuple[ConsumerQueue, ...] = field(default=ALL_CONSUMER_QUEUES)

    @property
    def exchange(self) -> str:
        return f"{self.namespace}sift"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}sift.dlx"

    @property
    def retry_exchange(self) -> str:
        """The topic exchange a consumer parks a message through, into one of its retry
        queues or its DLQ: each is bound by its own name."""
        return f"{self.namespace}sift.retry"

    def exchanges(self) -> tuple[str, ...]:
        return (self.exchange, self.dead_letter_exchange, self.retry_exchange)

    def resolve(self, spec: ConsumerQueue[EventT]) -> ConsumerQueue[EventT]:
        """This topology's queue named like `spec`: its retry settings may differ (tests
        shorten the ladders), its event may not."""
        for declared in self.consumer_queues:
            if declared.name == spec.name and declared.event is spec.event:
                return cast(ConsumerQueue[EventT], declared)
        raise KeyError(f"no {spec.name} queue for {spec.event.__name__} in this topology")

    def work_queue(self, spec: ConsumerQueue) -> str:
        return f"{self.namespace}{spec.name}"

    def dead_letter_queue(self, spec: ConsumerQueue) -> str:
        return f"{self.work_queue(spec)}.dlq"

    def retry_queue(self, spec: ConsumerQueue, rung: int) -> str:
        return f"{self.work_queue(spec)}.retry.{spec.retry_delays_ms[rung]}ms"

    def declared_names(self) -> list[str]:
        """Every queue of the topology, in declaration order."""
        return [d.name for spec in self.consumer_queues for d in self.declarations(spec)]

    def declarations(self, spec: ConsumerQueue) -> list[QueueDeclaration]:
        """The DLQ, the retry ladder and the work queue of one consumer, in declaration order."""
        work = self.work_queue(spec)
        quorum = {"x-queue-type": "quorum"}
        dead_letters = self.dead_letter_queue(spec)
        declared = [
            QueueDeclaration(
                dead_letters,
                quorum,
                bindings=((self.dead_letter_exchange, work), (self.retry_exchange, dead_letters)),
            )
        ]
        declared += [
            QueueDeclaration(
                self.retry_queue(spec, rung),
                {
                    **quorum,
                    **AT_LEAST_ONCE,
                    "x-message-ttl": delay_ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": work,
                },
                bindings=((self.retry_exchange, self.retry_queue(spec, rung)),),
            )
            for rung, delay_ms in enumerate(spec.retry_delays_ms)
        ]
        declared.append(QueueDeclaration(work, self.work_queue_arguments(spec)))
        return declared

    def work_queue_arguments(self, spec: ConsumerQueue) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            **AT_LEAST_ONCE,
            "x-delivery-limit": spec.delivery_limit,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": self.work_queue(spec),
        }
