"""Least privilege on the broker: what each service's RabbitMQ user may do, read off the topology.

RabbitMQ checks three regexes per user and vhost on the resource an operation names
(docs: access control): *configure* to declare or delete a queue or exchange (a queue declared
with a dead-letter exchange also needs *write* on that exchange and *read* on the queue),
*write* to publish to an exchange and to bind a queue (write on the queue, read on the
exchange), *read* to consume or get from a queue. Passive declares need nothing. On a topic
exchange, topic permissions add a regex on the routing key: *write* for publishing, *read* for
binding.

So a service's user (`sift-<service>`) may:

- configure only its own work queues (its FastStream subscriber declares them, which compares
  their arguments); the exchanges, retry queues, DLQs and every binding but the work queue's
  own come from `sift broker provision`, run as an administrator;
- write to the event exchange only the routing keys it produces (`PRODUCERS`), so the
  collector cannot publish a `document.analyzed`; write to the retry exchange only the names
  of its own retry queues and DLQs; write to the dead-letter exchange (RabbitMQ asks for it
  when a queue naming it is declared); never the default exchange, which reaches every queue;
- read (consume) only its own work queues, and bind them to the event exchange only by the
  routing keys they take.

`sift-upstream` (AMQP publishers outside Sift) may only publish `DocumentSubmitted`.
"""

import re
from dataclasses import dataclass

from sift_common.messaging.catalog import consumed_by, published_by, services
from sift_common.messaging.topology import UPSTREAM, Topology

NOTHING = "^$"  # RabbitMQ's own spelling of an empty permission
USER_PREFIX = "sift-"


@dataclass(frozen=True)
class TopicPermission:
    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class BrokerUser:
    """One service's user: its vhost permissions and its topic permissions."""

    service: str
    configure: str
    write: str
    read: str
    topics: tuple[TopicPermission, ...]

    @property
    def name(self) -> str:
        return f"{USER_PREFIX}{self.service}"


def _either(names: list[str]) -> str:
    return "|".join(re.escape(name) for name in sorted(set(names)))


def exactly(names: list[str]) -> str:
    """A regex matching exactly these names (nothing when there are none)."""
    return f"^(?:{_either(names)})$" if names else NOTHING


def parked(work_queues: list[str]) -> str:
    """The names of these work queues' retry queues and DLQs, whatever the retry delays (a
    changed ladder needs no new permissions)."""
    return rf"^(?:{_either(work_queues)})\.(?:dlq|retry\.[0-9]+ms)$" if work_queues else NOTHING


def broker_users(topology: Topology) -> list[BrokerUser]:
    """A user for every Sift service of the topology, then one for upstream publishers."""
    return [service_user(topology, name) for name in services(topology)] + [
        service_user(topology, UPSTREAM)
    ]


def service_user(topology: Topology, service: str) -> BrokerUser:
    own = consumed_by(topology, service)
    work = [topology.work_queue(spec) for spec in own]
    produces = [event.ROUTING_KEY for event in published_by(service)]
    exchanges = [topology.exchange] if produces else []
    if own:  # its retries and dead letters, and the DLX its work queues name
        exchanges += [topology.retry_exchange, topology.dead_letter_exchange]
    return BrokerUser(
        service=service,
        configure=exactly(work),
        write=exactly(work + exchanges),
        read=exactly(work + ([topology.exchange] if own else [])),
        topics=(
            TopicPermission(
                topology.exchange,
                write=exactly(produces),
                read=exactly([spec.routing_key for spec in own]),
            ),
            TopicPermission(topology.retry_exchange, write=parked(work), read=NOTHING),
        ),
    )
