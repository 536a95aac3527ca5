"""A consumer process killed with SIGKILL mid-handler: the message comes back, once."""

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scripts.processes import Child
from sift_common.messaging.broker import declare_topology, make_broker, publish_event
from sift_common.messaging.topology import Topology
from tests.conftest import ROOT
from tests.support.consumer_process import CRASH_SPEC
from tests.support.rabbit import delete_topology, ready_count, sample_event, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def topology(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    topology = Topology(namespace, (CRASH_SPEC,))
    yield topology
    await delete_topology(rabbit_url, topology)


def journal_lines(journal: Path) -> list[str]:
    return journal.read_text().splitlines() if journal.exists() else []


async def test_killed_consumer_message_is_redelivered_and_processed_once(
    rabbit_url: str,
    topology: Topology,
    tmp_path: Path,
    children: list[Child],
) -> None:
    journal = tmp_path / "journal.log"

    def start(mode: str) -> Child:
        module = [sys.executable, "-m", "tests.support.consumer_process"]
        command = [*module, rabbit_url, topology.namespace, str(journal), mode]
        consumer = Child(f"consumer-{mode}", command, tmp_path / f"{mode}.log", cwd=ROOT)
        children.append(consumer.start())
        return consumer

    broker = make_broker(rabbit_url)
    await broker.connect()
    await declare_topology(rabbit_url, topology)
    event = sample_event()
    await publish_event(broker, topology, event)
    await broker.stop()

    doomed = start("hang")
    await wait_until(lambda: f"start {event.event_id} {doomed.pid}" in journal_lines(journal), 60)
    doomed.kill()

    survivor = start("work")
    await wait_until(lambda: any(line.startswith("done") for line in journal_lines(journal)), 60)
    await asyncio.sleep(1.0)  # a second, wrong delivery would show up in this window

    lines = journal_lines(journal)
    assert [line for line in lines if line.startswith("done")] == [
        f"done {event.event_id} {survivor.pid}"
    ]
    assert [line.split()[2] for line in lines if line.startswith("start")] == [
        str(doomed.pid),
        str(survivor.pid),
    ]
    assert await ready_count(rabbit_url, topology.work_queue(CRASH_SPEC)) == 0
    assert await ready_count(rabbit_url, topology.dead_letter_queue(CRASH_SPEC)) == 0
