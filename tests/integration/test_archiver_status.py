"""The archiver's queue-depth reader against the real RabbitMQ, and when the broker is gone."""

from collections.abc import AsyncIterator

import pytest

from sift_archiver.status import BrokerUnavailable, QueueDepths
from sift_common.messaging.broker import declare_topology, make_broker
from sift_common.messaging.topology import ARCHIVER_DOCUMENTS, Topology
from tests.support.gateway import free_port
from tests.support.rabbit import delete_topology, sample_event

pytestmark = pytest.mark.integration


@pytest.fixture
async def topology(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    topology = Topology(namespace, (ARCHIVER_DOCUMENTS,))
    yield topology
    await delete_topology(rabbit_url, topology)


async def test_depths_count_ready_messages_and_reuse_one_connection(
    rabbit_url: str, topology: Topology
) -> None:
    depths = QueueDepths(rabbit_url, topology)
    try:
        assert await depths() == {ARCHIVER_DOCUMENTS.name: {"messages": None, "dlq": None}}
        broker = make_broker(rabbit_url)
        await broker.connect()
        await declare_topology(rabbit_url, topology)
        event = sample_event()
        await broker.publish(
            event.model_dump(mode="json"),
            exchange=topology.exchange,
            routing_key=ARCHIVER_DOCUMENTS.routing_key,
        )
        await broker.stop()
        first = depths._connection
        assert await depths() == {ARCHIVER_DOCUMENTS.name: {"messages": 1, "dlq": 0}}
        assert depths._connection is first, "a status poll must not open a new connection"
    finally:
        await depths.close()


async def test_an_unreachable_broker_is_reported_not_raised_raw(topology: Topology) -> None:
    depths = QueueDepths(f"amqp://guest:guest@127.0.0.1:{free_port()}/", topology, timeout_s=3)
    with pytest.raises(BrokerUnavailable, match="broker did not answer"):
        await depths()
