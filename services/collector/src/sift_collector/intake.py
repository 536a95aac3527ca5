"""The AMQP intake: publishers that speak AMQP send `DocumentSubmitted` to `intake.document`.

The same validation as the HTTP API applies. A message that can never be accepted (not JSON,
not a `DocumentSubmitted`, or refused by normalisation such as an oversize body) goes to the
intake's dead-letter queue with the reason in `x-sift-dead-letter-reason`; a broker or Redis
that is down is transient and goes through the retry ladder. AMQP senders are not
authenticated per publisher here, so their documents carry `metadata["publisher"] = "amqp"`.
"""

from faststream.rabbit import RabbitBroker
from prometheus_client import CollectorRegistry

from sift_collector.ingest import BatchRejectedError, Ingest
from sift_common.contracts import DocumentCollected, DocumentSubmitted
from sift_common.errors import InvalidMessageError
from sift_common.messaging.broker import event_exchange
from sift_common.messaging.consumer import subscribe
from sift_common.messaging.inflight import InFlight
from sift_common.messaging.topology import COLLECTOR_INTAKE, Topology

INTAKE_PUBLISHER = "amqp"


def register_intake(
    broker: RabbitBroker,
    topology: Topology,
    ingest: Ingest,
    *,
    prefetch: int = 32,
    inflight: InFlight | None = None,
    registry: CollectorRegistry | None = None,
) -> None:
    """Subscribe the intake handler to the collector's intake queue (before `broker.start`);
    with a `registry`, the messages' age at delivery is observed there."""

    async def on_submitted(event: DocumentSubmitted) -> None:
        try:
            await ingest.submit([event.document], INTAKE_PUBLISHER, event.priority)
        except BatchRejectedError as exc:
            reasons = "; ".join(f"document.{r.field}: {r.reason}" for r in exc.rejections)
            raise InvalidMessageError(f"document refused: {reasons}") from exc

    subscribe(
        broker, topology, COLLECTOR_INTAKE, on_submitted,
        prefetch=prefetch, inflight=inflight, registry=registry,
    )  # fmt: skip


def document_outputs(broker: RabbitBroker, topology: Topology) -> None:
    """Declare, for the AsyncAPI document, the event the collector publishes.

    `DocumentPublisher` sends through `publish_event`; this registration describes that
    traffic (exchange, routing key, persistent delivery, payload schema) and sends nothing."""
    broker.publisher(
        exchange=event_exchange(topology),
        routing_key=DocumentCollected.ROUTING_KEY,
        persist=True,
        schema=DocumentCollected,
        title=DocumentCollected.ROUTING_KEY,
        description=(
            "A normalised, deduplicated document entered Sift. Persistent, mandatory and "
            "confirmed; `correlation_id` is the document id."
        ),
    )
