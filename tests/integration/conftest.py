"""Fixtures shared by the gateway integration tests (tests/integration/test_gateway_*.py)."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream, running_fake
from tests.support.gateway import StartFake


@pytest.fixture
async def fakes() -> AsyncIterator[StartFake]:
    """Start FAKE upstreams (`FakeUpstream` fields as keywords); all stopped after the test."""
    async with AsyncExitStack() as stack:

        async def start(**fields: Any) -> FakeUpstream:
            return await stack.enter_async_context(running_fake(FakeUpstream(**fields)))

        yield start
