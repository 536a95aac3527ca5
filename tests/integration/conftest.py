"""Fixtures shared by the integration tests: FAKE upstreams (the gateway's tests), child
processes killed at teardown."""

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from scripts.processes import Child
from tests.support.fake_upstream import FakeUpstream, running_fake
from tests.support.gateway import StartFake


@pytest.fixture
async def fakes() -> AsyncIterator[StartFake]:
    """Start FAKE upstreams (`FakeUpstream` fields as keywords); all stopped after the test."""
    async with AsyncExitStack() as stack:

        async def start(**fields: Any) -> FakeUpstream:
            return await stack.enter_async_context(running_fake(FakeUpstream(**fields)))

        yield start


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """The processes a test started (it appends them); kill -9 to each at teardown."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()
