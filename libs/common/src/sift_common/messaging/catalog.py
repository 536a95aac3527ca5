"""The event flow, read off the topology: who publishes each event, which queue takes it and
which service consumes it, rendered as the generated section of docs/events.md.

A `ConsumerQueue` names its event and, by the first part of its name, its consumer;
`PRODUCERS` names each event's publishers. Nothing here is declared twice: the AsyncAPI
documents (asyncapi.py) are built from the same two declarations.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from sift_common.contracts import Event
from sift_common.messaging.topology import PRODUCERS, UPSTREAM, ConsumerQueue, Topology


@dataclass(frozen=True)
class Route:
    """One event's way from its producers through one queue to that queue's consumer."""

    producers: tuple[str, ...]
    queue: ConsumerQueue

    @property
    def event(self) -> type[Event]:
        return self.queue.event


def routes(topology: Topology) -> list[Route]:
    return [Route(PRODUCERS.get(spec.event, ()), spec) for spec in topology.consumer_queues]


def services(topology: Topology) -> list[str]:
    """Every Sift service that consumes or publishes an event, in the order of the flow."""
    seen: dict[str, None] = {}
    for route in routes(topology):
        for name in (*route.producers, route.queue.consumer):
            if name != UPSTREAM:
                seen.setdefault(name)
    return list(seen)


def consumed_by(topology: Topology, service: str) -> list[ConsumerQueue]:
    return [spec for spec in topology.consumer_queues if spec.consumer == service]


def published_by(service: str) -> list[type[Event]]:
    return [event for event, producers in PRODUCERS.items() if service in producers]


def unproduced(topology: Topology) -> list[ConsumerQueue]:
    """Queues whose event nobody publishes: a contract joined to nothing."""
    return [route.queue for route in routes(topology) if not route.producers]


def unconsumed(topology: Topology, events: Iterable[type[Event]]) -> list[type[Event]]:
    """Events no queue takes: a mandatory publish of one is returned as unroutable."""
    taken = {spec.event for spec in topology.consumer_queues}
    return [event for event in events if event not in taken]


def summary(event: type[Event]) -> str:
    """The first paragraph of the event's docstring, on one line."""
    paragraph = (event.__doc__ or "").strip().split("\n\n", 1)[0]
    return " ".join(paragraph.split())


def duration(ms: int) -> str:
    """5000 → '5 s', 300000 → '5 min', 1500 → '1.5 s'."""
    if ms % 60_000 == 0:
        return f"{ms // 60_000} min"
    if ms % 1_000 == 0:
        return f"{ms // 1_000} s"
    return f"{ms / 1_000:g} s"


def events_section(topology: Topology) -> str:
    """The generated part of docs/events.md: a diagram and three tables."""
    return "\n\n".join(
        [_diagram(topology), _flow_table(topology), _queue_table(topology), _event_table(topology)]
    )


def _node(name: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in name)


def _diagram(topology: Topology) -> str:
    lines = ["```mermaid", "flowchart LR"]
    for route in routes(topology):
        queue = route.queue.name
        for producer in route.producers or ("nobody",):
            lines.append(
                f"  {_node(producer)}([{producer}]) -- {route.queue.routing_key} --> "
                f'q_{_node(queue)}[["{queue}"]]'
            )
        consumer = route.queue.consumer
        lines.append(f"  q_{_node(queue)} --> {_node(consumer)}([{consumer}])")
    return "\n".join([*lines, "```"])


def _flow_table(topology: Topology) -> str:
    rows = [
        "| producer | routing key | event | queue | consumer |",
        "| --- | --- | --- | --- | --- |",
    ]
    for route in routes(topology):
        producers = ", ".join(route.producers) or "**nobody**"
        rows.append(
            f"| {producers} | `{route.queue.routing_key}` | `{route.event.__name__}` | "
            f"`{topology.work_queue(route.queue)}` | {route.queue.consumer} |"
        )
    return "\n".join(rows)


def _queue_table(topology: Topology) -> str:
    rows = [
        "| queue | retry ladder | retries | delivery limit | dead letters |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in topology.consumer_queues:
        ladder = ", ".join(duration(ms) for ms in spec.retry_delays_ms)
        rows.append(
            f"| `{topology.work_queue(spec)}` | {ladder} | {spec.max_retries} | "
            f"{spec.delivery_limit} | `{topology.dead_letter_queue(spec)}` |"
        )
    return "\n".join(rows)


def _event_table(topology: Topology) -> str:
    rows = ["| event | routing key | what it says |", "| --- | --- | --- |"]
    events = dict.fromkeys(spec.event for spec in topology.consumer_queues)
    for event in events:
        rows.append(f"| `{event.__name__}` | `{event.ROUTING_KEY}` | {summary(event)} |")
    return "\n".join(rows)
