"""Least privilege on a private RabbitMQ node (never the developer's broker: users change here).

`sift broker provision` makes a vhost and a user per service; each user does its own
work (declares and consumes its queues, publishes its events, parks a failed message on its
retry ladder) and nothing else: a forged event published with another service's credentials
is refused by the broker and never reaches the archiver's queue."""

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from scripts.processes import free_ports
from sift_common.contracts import DocumentAnalyzed, DocumentCollected
from sift_common.errors import ConfigError
from sift_common.messaging.broker import declare_topology, make_broker, publish_event
from sift_common.messaging.broker_cli import with_vhost
from sift_common.messaging.consumer import subscribe
from sift_common.messaging.privileges import broker_users
from sift_common.messaging.provision import ManagementApi, RabbitCtl, provision_users
from sift_common.messaging.topology import (
    ALL_CONSUMER_QUEUES,
    ANALYZER_DOCUMENTS,
    ARCHIVER_DOCUMENTS,
    COLLECTOR_INTAKE,
    Topology,
)
from tests.support.archiver import analyzed
from tests.support.private_services import PrivateRabbit
from tests.support.rabbit import rabbit_channel, ready_count, sample_event, wait_until

pytestmark = pytest.mark.integration

VHOST = "sift"
SIFT = Path(sys.executable).with_name("sift")  # the console script operators run
# A short analyzer ladder (SIFT_ANALYZER_RETRY_DELAYS_MS): a retried message comes back at once.
TOPOLOGY = Topology(
    consumer_queues=tuple(
        replace(spec, retry_delays_ms=(200,)) if spec.consumer == "analyzer" else spec
        for spec in ALL_CONSUMER_QUEUES
    )
)
PASSWORDS = {"collector": "c-secret", "analyzer": "a-secret", "archiver": "r-secret"}


@pytest.fixture(scope="module")
def management_port() -> int:
    [port] = free_ports(1)
    return port


@pytest.fixture(scope="module")
def private_rabbit(
    tmp_path_factory: pytest.TempPathFactory, management_port: int
) -> Iterator[PrivateRabbit]:
    try:
        rabbit = PrivateRabbit(tmp_path_factory.mktemp("rabbit"))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    # The management plugin too, for provisioning over HTTP (as compose's broker has it).
    (rabbit.root / "enabled_plugins").write_text("[rabbitmq_management].")
    with (rabbit.root / "rabbitmq.conf").open("a") as config:
        config.write(f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management_port}\n")
    try:
        rabbit.start()
        yield rabbit
    finally:
        rabbit.stop()


@pytest.fixture(scope="module")
def provisioned(private_rabbit: PrivateRabbit, management_port: int) -> str:
    """The admin URL of the vhost `sift broker provision` made, run twice (it converges):
    through the management API, then through rabbitmqctl."""
    env = {
        **private_rabbit.env,
        "SIFT_RABBIT_URL": private_rabbit.url,
        "SIFT_NAMESPACE": "",
        "SIFT_ANALYZER_RETRY_DELAYS_MS": "200",
        **{f"SIFT_RABBIT_PASSWORD_{s.upper()}": p for s, p in PASSWORDS.items()},
    }
    rabbitmqctl = f"{private_rabbit.sbin / 'rabbitmqctl'} -n {private_rabbit.node}"
    for admin in (
        ["--management-url", f"http://127.0.0.1:{management_port}"],
        ["--rabbitmqctl", rabbitmqctl],
    ):
        run = subprocess.run(
            [str(SIFT), "broker", "provision", "--vhost", VHOST, *admin],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert "sift-archiver: password, permissions and topic permissions set" in run.stdout
    return with_vhost(private_rabbit.url, VHOST)


def as_service(admin_url: str, service: str) -> str:
    return admin_url.replace("guest:guest", f"sift-{service}:{PASSWORDS[service]}")


@pytest.fixture(scope="module")
def ctl(private_rabbit: PrivateRabbit) -> RabbitCtl:
    return RabbitCtl(
        (str(private_rabbit.sbin / "rabbitmqctl"), "-n", private_rabbit.node),
        env=private_rabbit.env,
    )


@pytest.fixture
async def channel_of(provisioned: str) -> AsyncIterator[dict[str, aio_pika.abc.AbstractChannel]]:
    connections = {s: await aio_pika.connect(as_service(provisioned, s)) for s in PASSWORDS}
    try:
        yield {s: await c.channel(publisher_confirms=True) for s, c in connections.items()}
    finally:
        for connection in connections.values():
            await connection.close()


async def test_each_service_declares_its_own_queues_and_nothing_else(provisioned: str) -> None:
    for service in PASSWORDS:
        await declare_topology(as_service(provisioned, service), TOPOLOGY, service=service)
    with pytest.raises(ConfigError, match="sift broker provision"):  # all: configure everything
        await declare_topology(as_service(provisioned, "collector"), TOPOLOGY)


async def test_a_service_refuses_its_queue_of_an_older_sift(
    private_rabbit: PrivateRabbit, management_port: int
) -> None:
    admin_url = with_vhost(private_rabbit.url, "older")
    api = ManagementApi(f"http://127.0.0.1:{management_port}", "guest", "guest")
    try:
        provision_users(api, "older", broker_users(TOPOLOGY), PASSWORDS, administrator="guest")
    finally:
        api.close()
    await declare_topology(admin_url, TOPOLOGY)
    intake = TOPOLOGY.resolve(COLLECTOR_INTAKE)
    async with rabbit_channel(admin_url) as channel:  # as an older Sift declared it
        await channel.queue_delete(TOPOLOGY.work_queue(intake))
        old = {"x-queue-type": "quorum", "x-delivery-limit": intake.delivery_limit}
        await channel.declare_queue(TOPOLOGY.work_queue(intake), durable=True, arguments=old)
    with pytest.raises(ConfigError, match="sift queues migrate"):
        await declare_topology(as_service(admin_url, "collector"), TOPOLOGY, service="collector")


async def test_provisioning_over_the_management_api_sets_the_same_privileges(
    private_rabbit: PrivateRabbit, provisioned: str, ctl: RabbitCtl, management_port: int
) -> None:
    api = ManagementApi(f"http://127.0.0.1:{management_port}", "guest", "guest")
    try:
        for _ in range(2):
            provision_users(
                api, "viahttp", broker_users(TOPOLOGY), PASSWORDS, administrator="guest"
            )
    finally:
        api.close()
    for listing in ("list_permissions", "list_topic_permissions"):
        by_ctl, by_http = (ctl(listing, "-p", vhost, "--quiet") for vhost in (VHOST, "viahttp"))
        assert sorted(by_http.splitlines()) == sorted(by_ctl.splitlines())
    await declare_topology(with_vhost(private_rabbit.url, "viahttp"), TOPOLOGY)
    async with rabbit_channel(
        as_service(with_vhost(private_rabbit.url, "viahttp"), "collector")
    ) as channel:
        events = await channel.get_exchange(TOPOLOGY.exchange, ensure=False)
        with pytest.raises(ChannelAccessRefused):
            await events.publish(aio_pika.Message(b"{}"), routing_key=DocumentAnalyzed.ROUTING_KEY)


async def test_events_flow_through_their_producers_and_retries_stay_home(provisioned: str) -> None:
    """collector → analyzer (fails once: its retry ladder) → analyzer publishes → archiver."""
    seen: list[str] = []
    analyzer = make_broker(as_service(provisioned, "analyzer"))

    async def analyze(event: DocumentCollected) -> None:
        seen.append(event.event_id)
        if len(seen) == 1:
            raise ConnectionError("transient: retried through sift.retry")
        await publish_event(
            analyzer, TOPOLOGY, analyzed(event.document.title or "?", event.document.body)
        )

    subscribe(analyzer, TOPOLOGY, TOPOLOGY.resolve(ANALYZER_DOCUMENTS), analyze)
    await analyzer.connect()
    await analyzer.start()  # declares and binds its work queue as sift-analyzer
    collector = make_broker(as_service(provisioned, "collector"))
    await collector.connect()
    try:
        await publish_event(collector, TOPOLOGY, sample_event())
        archiver_queue = TOPOLOGY.work_queue(TOPOLOGY.resolve(ARCHIVER_DOCUMENTS))
        await wait_until(lambda: len(seen) == 2)
        await wait_until_queue(provisioned, archiver_queue, 1)
    finally:
        await collector.stop()
        await analyzer.stop()


async def test_a_forged_event_is_refused_and_never_reaches_the_archiver(
    provisioned: str, channel_of: dict[str, aio_pika.abc.AbstractChannel]
) -> None:
    archiver_queue = TOPOLOGY.work_queue(TOPOLOGY.resolve(ARCHIVER_DOCUMENTS))
    before = await ready_count(provisioned, archiver_queue)
    forged = aio_pika.Message(b'{"forged": true}', delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    collector = channel_of["collector"]
    events = await collector.get_exchange(TOPOLOGY.exchange, ensure=False)
    with pytest.raises(ChannelAccessRefused, match=r"document\.analyzed"):
        await events.publish(forged, routing_key=DocumentAnalyzed.ROUTING_KEY)
    # Nor around the topic check: straight into the queue, or into its retry ladder.
    for exchange, key in (("", archiver_queue), (TOPOLOGY.retry_exchange, f"{archiver_queue}.dlq")):
        async with rabbit_channel(as_service(provisioned, "collector")) as channel:
            target = await channel.get_exchange(exchange, ensure=False)
            with pytest.raises(ChannelAccessRefused):
                await target.publish(forged, routing_key=key)
    assert await ready_count(provisioned, archiver_queue) == before


ATTEMPTS: dict[str, Callable[[aio_pika.abc.AbstractQueue], Awaitable[object]]] = {
    "consume": lambda queue: queue.consume(ignore),
    "get": lambda queue: queue.get(fail=False),
    "purge": lambda queue: queue.purge(),
    "delete": lambda queue: queue.delete(if_unused=False, if_empty=False),
    "bind": lambda queue: queue.bind(TOPOLOGY.exchange, routing_key="#"),
}


@pytest.mark.parametrize("attempt", ATTEMPTS)
async def test_a_service_cannot_touch_another_services_queue(
    provisioned: str, attempt: str
) -> None:
    archiver_queue = TOPOLOGY.work_queue(TOPOLOGY.resolve(ARCHIVER_DOCUMENTS))
    async with rabbit_channel(as_service(provisioned, "collector")) as channel:
        queue = await channel.declare_queue(archiver_queue, passive=True)
        with pytest.raises(ChannelAccessRefused):
            await ATTEMPTS[attempt](queue)


async def test_a_service_binds_its_queue_only_to_its_own_events(provisioned: str) -> None:
    async with rabbit_channel(as_service(provisioned, "analyzer")) as channel:
        queue = await channel.declare_queue(TOPOLOGY.work_queue(ANALYZER_DOCUMENTS), passive=True)
        with pytest.raises(ChannelAccessRefused):
            await queue.bind(TOPOLOGY.exchange, routing_key=DocumentAnalyzed.ROUTING_KEY)


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    pytest.fail("consumed another service's message")


async def wait_until_queue(url: str, queue: str, count: int) -> None:
    for _ in range(100):
        if await ready_count(url, queue) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{queue} never held {count} message(s)")
