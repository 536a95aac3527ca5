"""`publish_once_open` across the moment after a reconnect when aio-pika reports the connection
up but has not restored its channels yet (a publish then raises ChannelInvalidStateError before
anything is sent). The real broker cannot be stopped inside that window on cue, so a FAKE broker
stands in: its publish fails with that error a set number of times, and its ping reports the
connection up or down."""

import asyncio
from typing import Any, cast

import pytest
from aio_pika.exceptions import ChannelInvalidStateError
from faststream.rabbit import RabbitBroker

from sift_collector.publisher import publish_once_open
from sift_common.contracts import Document, DocumentCollected
from sift_common.messaging.topology import Topology


class FakeRestoringBroker:
    """FAKE: the channel is closed for the first `closed_publishes` publishes."""

    def __init__(self, closed_publishes: int, connection_up: bool) -> None:
        self.closed_publishes, self.connection_up = closed_publishes, connection_up
        self.attempts, self.published = 0, 0

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        self.attempts += 1
        if self.attempts <= self.closed_publishes:
            raise ChannelInvalidStateError("<RobustChannel> closed")
        self.published += 1

    async def ping(self, timeout: float | None) -> bool:
        return self.connection_up


def event() -> DocumentCollected:
    document = Document.create(source="wire", body="Acme opened a plant.")
    return DocumentCollected(correlation_id=document.id, document=document)


async def test_a_channel_being_restored_is_waited_for_and_published_once() -> None:
    broker = FakeRestoringBroker(closed_publishes=3, connection_up=True)
    await publish_once_open(cast(RabbitBroker, broker), Topology("t."), event())
    assert (broker.attempts, broker.published) == (4, 1)


async def test_with_the_connection_down_it_fails_at_once() -> None:
    broker = FakeRestoringBroker(closed_publishes=1, connection_up=False)
    with pytest.raises(ChannelInvalidStateError):
        await publish_once_open(cast(RabbitBroker, broker), Topology("t."), event())
    assert (broker.attempts, broker.published) == (1, 0)


async def test_a_channel_that_never_comes_back_is_bounded_by_the_callers_timeout() -> None:
    broker = FakeRestoringBroker(closed_publishes=10**6, connection_up=True)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await publish_once_open(cast(RabbitBroker, broker), Topology("t."), event())
    assert broker.published == 0
