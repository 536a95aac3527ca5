"""At-least-once dead-lettering across a node that goes down, on a PRIVATE three-node RabbitMQ
cluster started with the advanced.config Sift ships (deploy/rabbitmq/).

Sift's retry queues hand a message back to its work queue by dead-lettering it at least once:
the retry queue's dead-letter worker forwards it and waits for the work queue's confirm. When
the work queue's leader is down at that moment, the confirm never comes and the worker forwards
again only after `dead_letter_worker_publisher_confirm_timeout`: RabbitMQ's default of 180 s
held six retried documents of the cluster fault scenario for three minutes. This test with the
default: the message arrived 176 s after the target's node came back; shipped (10 s, checked as
often): 8 s.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from sift_common.messaging.topology import AT_LEAST_ONCE
from tests.support.rabbit_cluster import PrivateRabbitCluster

pytestmark = pytest.mark.integration

TTL_MS = 2_000
SHIPPED_TIMEOUT_MS = 10_000
# The worker's timer fires every timeout and resends what is older than one: at most two
# timeouts after the target is back, plus start-up slack. The default would take 180-360 s.
ARRIVES_WITHIN_S = 60.0


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[PrivateRabbitCluster]:
    cluster = PrivateRabbitCluster(tmp_path / "rabbit")
    await asyncio.to_thread(cluster.start)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


def messages(cluster: PrivateRabbitCluster, queue: str) -> int:
    ready, unacked = cluster.queue_counts().get(queue, (0, 0))
    return ready + unacked


async def test_a_dead_letter_whose_target_was_down_arrives_within_the_shipped_timeout(
    cluster: PrivateRabbitCluster,
) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    setting = a.ctl(
        "eval", "application:get_env(rabbit, dead_letter_worker_publisher_confirm_timeout)."
    )
    assert setting.stdout.strip() == f"{{ok,{SHIPPED_TIMEOUT_MS}}}", setting.stdout + setting.stderr

    one_member = {"x-queue-type": "quorum", "x-quorum-initial-group-size": 1}
    # The target's only member is node b, so that it is down, not moving, when the message is
    # forwarded (a work queue's leader killed mid-forward stalls the same way, by chance).
    on_b = await aio_pika.connect(b.url)
    channel = await on_b.channel()
    await channel.declare_queue("target", durable=True, arguments=one_member)
    await on_b.close()
    on_a = await aio_pika.connect(a.url)
    try:
        channel = await on_a.channel(publisher_confirms=True)
        await channel.declare_queue(
            "source",
            durable=True,
            arguments={
                "x-queue-type": "quorum",  # on every node, as Sift's are: a and c carry it
                "x-message-ttl": TTL_MS,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "target",
                **AT_LEAST_ONCE,
            },
        )  # the shape of Sift's retry queues (sift_common.messaging.topology)
        assert cluster.leader_of("target") == "b"
        await channel.default_exchange.publish(aio_pika.Message(b"retry me"), routing_key="source")
        await asyncio.to_thread(cluster.kill, "b")
        await asyncio.sleep(3 * TTL_MS / 1000)  # expired and forwarded while b is down
        await asyncio.to_thread(cluster.restart, "b")
        back = time.monotonic()
        while messages(cluster, "target") == 0 and time.monotonic() - back < ARRIVES_WITHIN_S:
            await asyncio.sleep(1.0)
        waited_s = time.monotonic() - back
    finally:
        await on_a.close()
    assert messages(cluster, "target") >= 1, f"not forwarded {waited_s:.0f} s after b came back"
    assert messages(cluster, "source") == 0
    print(f"\nforwarded {waited_s:.1f} s after the target's node came back")
