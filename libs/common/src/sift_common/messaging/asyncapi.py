"""Each service's AsyncAPI document, generated from the topology and `PRODUCERS`.

FastStream writes the document from a broker that only describes, and is never connected: one
subscriber per queue the service consumes, whose handler takes the queue's event (so the payload
schema is that pydantic model's), and one publisher per event the service publishes, persistent
and mandatory as `publish_event` sends it. The services' own brokers cannot say this: the
reliable consumer (consumer.py) takes raw bytes and decodes them itself, which FastStream would
document as a binary payload, and events are published through `publish_event`, not through
registered publishers.
"""

from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI

from sift_common.contracts import Event
from sift_common.messaging.broker import event_exchange, make_broker, work_queue
from sift_common.messaging.catalog import consumed_by, duration, published_by, summary
from sift_common.messaging.topology import DEAD_LETTER_REASON_HEADER, ConsumerQueue, Topology
from sift_common.settings import RabbitSettings


def asyncapi_document(service: str, topology: Topology | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `service`, as JSON-able data."""
    topology = topology or Topology()
    broker = make_broker(str(RabbitSettings.model_fields["rabbit_url"].default))
    consumed = consumed_by(topology, service)
    published = published_by(service)
    if not consumed and not published:
        raise ValueError(f"{service} neither consumes nor publishes an event")
    for spec in consumed:
        _describe_subscription(broker, topology, spec)
    for event in published:
        _describe_publication(broker, topology, event)
    document = AsyncAPI(
        broker,
        title=f"Sift {service}",
        version=version("sift-common"),  # the contracts' package
        description=_description(service, topology, consumed, published),
    ).to_specification()
    queues = [topology.work_queue(spec) for spec in consumed]
    return _ordered(document.to_jsonable(), queues, published)


def _ordered(
    document: dict[str, Any], queues: list[str], published: list[type[Event]]
) -> dict[str, Any]:
    """Channels and operations in declaration order, components by name: FastStream keeps its
    publishers in a set, so its own order changes from one process to the next."""
    order = {
        name: index for index, name in enumerate([*queues, *(e.ROUTING_KEY for e in published)])
    }
    for key in ("channels", "operations"):
        document[key] = dict(sorted(document[key].items(), key=lambda item: order[item[0]]))
    for key in ("messages", "schemas"):
        document["components"][key] = dict(sorted(document["components"][key].items()))
    return document


def _describe_subscription(broker: RabbitBroker, topology: Topology, spec: ConsumerQueue) -> None:
    retries = ", ".join(duration(ms) for ms in spec.retry_delays_ms)
    broker.subscriber(
        work_queue(topology, spec),
        event_exchange(topology),
        title=topology.work_queue(spec),
        description=(
            f"{summary(spec.event)} Quorum queue bound to `{spec.routing_key}`. A transient "
            f"failure is retried after {retries} by default (at most {spec.max_retries} "
            "retries); an "
            f"invalid message, or one whose retries are spent, goes to "
            f"`{topology.dead_letter_queue(spec)}` with the reason in "
            f"`{DEAD_LETTER_REASON_HEADER}`."
        ),
    )(_receives(spec.event))


def _describe_publication(broker: RabbitBroker, topology: Topology, event: type[Event]) -> None:
    broker.publisher(
        exchange=event_exchange(topology),
        routing_key=event.ROUTING_KEY,
        persist=True,
        mandatory=True,
        schema=event,
        title=event.ROUTING_KEY,
        description=(
            f"{summary(event)} Persistent, mandatory and confirmed; `message_id` is the "
            "event id, `correlation_id` the document id or entity key."
        ),
    )


def _receives(event: type[Event]) -> Callable[[Any], Awaitable[None]]:
    """A handler FastStream reads the payload schema from; it is never called."""

    async def receive(message: Any) -> None:
        raise NotImplementedError("a documentation broker is never started")

    receive.__annotations__ = {"message": event, "return": None}
    receive.__name__ = receive.__qualname__ = event.__name__
    return receive


def _description(
    service: str,
    topology: Topology,
    consumed: list[ConsumerQueue],
    published: list[type[Event]],
) -> str:
    takes = ", ".join(
        f"`{spec.routing_key}` ({spec.event.__name__}) from `{topology.work_queue(spec)}`"
        for spec in consumed
    )
    sends = ", ".join(f"`{event.ROUTING_KEY}` ({event.__name__})" for event in published)
    parts = [f"The events Sift's {service} exchanges on the `{topology.exchange}` topic exchange."]
    if takes:
        parts.append(f"It consumes {takes}.")
    if sends:
        parts.append(f"It publishes {sends}.")
    parts.append(
        "Messages are JSON pydantic models with a `schema_version`; a consumer acks a message "
        "only once its effect is durable."
    )
    return " ".join(parts)
