"""`sift dlq` against the real broker: dead letters made by the real consumer (and one by the
broker's delivery limit) are listed and shown without being consumed, replayed once to their
work queue where a healthy consumer processes them, and purged only with --yes."""

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from typer.testing import CliRunner

from sift_archiver.cli import app as sift
from sift_common.contracts import DocumentCollected
from sift_common.errors import InvalidMessageError
from sift_common.messaging.broker import SCHEMA_VERSION_HEADER, make_broker, publish_event
from sift_common.messaging.dlq import DROPPED_ON_REPLAY, REPLAYED_HEADER
from sift_common.messaging.topology import ANALYZER_DOCUMENTS, DEAD_LETTER_REASON_HEADER, Topology
from tests.conftest import ROOT
from tests.support.rabbit import (
    rabbit_channel,
    ready_count,
    running_consumer,
    sample_event,
    wait_until,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

SPEC = ANALYZER_DOCUMENTS
LANGUAGE = "InvalidMessageError: unsupported language: fr"
SHORT = "InvalidMessageError: title too short"
# The installed `sift` console script: what `uv run sift` runs, without a second `uv run`
# syncing the shared environment from inside a test.
SIFT = Path(sys.executable).with_name("sift")


@dataclass(frozen=True)
class Samples:
    topology: Topology
    rabbit_url: str
    language: list[DocumentCollected]  # dead-lettered by the consumer: LANGUAGE
    short: list[DocumentCollected]  # dead-lettered by the consumer: SHORT
    poison: DocumentCollected  # dead-lettered by the broker: delivery limit

    @property
    def dlq(self) -> str:
        return self.topology.dead_letter_queue(SPEC)

    @property
    def work(self) -> str:
        return self.topology.work_queue(SPEC)

    @property
    def env(self) -> dict[str, str]:
        return {"SIFT_NAMESPACE": self.topology.namespace, "SIFT_RABBIT_URL": self.rabbit_url}

    async def depths(self) -> tuple[int, int]:
        dlq, work = self.topology.dead_letter_queue(SPEC), self.topology.work_queue(SPEC)
        return await ready_count(self.rabbit_url, dlq), await ready_count(self.rabbit_url, work)

    async def expect(self, dlq: int, work: int) -> None:
        """Ready messages in the DLQ and the work queue come to exactly these counts (a
        requeue reaches a quorum queue a moment after the channel that sent it closed)."""
        for _ in range(100):
            if await self.depths() == (dlq, work):
                return
            await asyncio.sleep(0.1)
        assert await self.depths() == (dlq, work)


@pytest.fixture
async def samples(rabbit_url: str, namespace: str) -> Samples:
    """Six dead letters in analyzer.documents' DLQ: 3 + 2 refused by the real consumer, one
    dead-lettered by the broker after too many deliveries."""
    topology = Topology(namespace)
    made = Samples(
        topology,
        rabbit_url,
        [sample_event(f"Langue {n}") for n in range(3)],
        [sample_event(f"Sh{n}") for n in range(2)],
        sample_event("Poison pill"),
    )

    async def refuse(event: DocumentCollected) -> None:
        title = event.document.title or ""
        raise InvalidMessageError("unsupported language: fr" if "Langue" in title else
                                  "title too short")  # fmt: skip

    async with running_consumer(rabbit_url, topology, SPEC, refuse) as broker:
        for event in [*made.language, *made.short]:
            await publish_event(broker, topology, event)
        await wait_until_ready(rabbit_url, made.dlq, 5)
    await _kill_by_delivery_limit(made)
    await made.expect(6, 0)
    return made


async def _kill_by_delivery_limit(samples: Samples) -> None:
    broker = make_broker(samples.rabbit_url)
    await broker.connect()
    await publish_event(broker, samples.topology, samples.poison)
    await broker.stop()
    async with rabbit_channel(samples.rabbit_url) as channel:
        work = await channel.declare_queue(samples.work, passive=True)
        for _ in range(400):
            if (message := await work.get(no_ack=False, fail=False)) is not None:
                await message.nack(requeue=True)
            elif await ready_count(samples.rabbit_url, samples.dlq) == 6:
                return
            else:
                await asyncio.sleep(0.05)
    raise AssertionError("the broker never dead-lettered the poison message")


def run_sift(samples: Samples, *args: str) -> subprocess.CompletedProcess[str]:
    """`sift dlq ...` as a user runs it, in a process of its own."""
    env = {**os.environ, **samples.env, "COLUMNS": "200"}
    return subprocess.run(
        [str(SIFT), "dlq", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


async def sift_dlq(samples: Samples, *args: str) -> Any:
    """`sift dlq ...` in-process (the `sift` Typer app), off the event loop."""
    env = {**samples.env, "COLUMNS": "200"}
    return await asyncio.to_thread(CliRunner().invoke, sift, ["dlq", *args], env=env)


async def sift_json(samples: Samples, *args: str) -> Any:
    result = await sift_dlq(samples, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_list_and_show_read_without_consuming(samples: Samples) -> None:
    listed = await asyncio.to_thread(run_sift, samples, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    queues = {queue["queue"]: queue for queue in data["queues"]}
    assert set(queues) == {spec.name for spec in samples.topology.consumer_queues}
    mine = queues[SPEC.name]
    assert (mine["messages"], mine["read"], mine["selected"]) == (6, 6, 6)
    reasons = {item["reason"]: item["count"] for item in mine["top_reasons"]}
    assert reasons == {LANGUAGE: 3, SHORT: 2, "broker: delivery_limit": 1}
    assert all(queue["messages"] == 0 for name, queue in queues.items() if name != SPEC.name)
    messages = data["messages"]
    by_id = {message["message_id"]: message for message in messages}
    events = [*samples.language, *samples.short, samples.poison]
    assert set(by_id) == {event.event_id for event in events}
    for event in events:
        letter = by_id[event.event_id]
        assert letter["correlation_id"] == event.document.id
        assert letter["original_queue"] == samples.work
        assert letter["kind"] == ("broker" if event is samples.poison else "invalid")
        assert letter["retry_count"] == 0
        assert 0 <= letter["age_s"] < 120
        assert letter["body_size"] == len(event.model_dump_json().encode())
    # Nothing consumed, nothing reordered.
    await samples.expect(6, 0)
    again = await sift_json(samples, "list")
    assert [message["message_id"] for message in again["messages"]] == list(by_id)

    shown = await asyncio.to_thread(run_sift, samples, "show", samples.poison.event_id)
    assert shown.returncode == 0, shown.stderr
    assert "broker: delivery_limit" in shown.stdout
    assert "x-first-death-reason" in shown.stdout
    assert '"title": "Poison pill"' in shown.stdout  # the body, pretty-printed
    first = samples.language[0]
    as_json = await sift_json(samples, "show", first.document.id, "--queue", SPEC.name)
    assert as_json["message_id"] == first.event_id
    assert as_json["headers"][DEAD_LETTER_REASON_HEADER] == LANGUAGE
    assert as_json["body"] == json.loads(first.model_dump_json())
    await samples.expect(6, 0)


async def test_filters_and_refusals(samples: Samples) -> None:
    selected = await sift_json(samples, "list", "--reason", "LANGUAGE", "--kind", "invalid")
    assert sorted(m["message_id"] for m in selected["messages"]) == sorted(
        event.event_id for event in samples.language
    )
    assert (await sift_json(samples, "list", "--older-than", "1h"))["messages"] == []
    by_document = await sift_json(samples, "list", "--id", samples.short[0].document.id)
    assert [m["message_id"] for m in by_document["messages"]] == [samples.short[0].event_id]
    table = await sift_dlq(samples, "list", "--queue", SPEC.name)
    assert table.exit_code == 0, table.output
    assert "title too short" in table.stdout
    assert (await sift_dlq(samples, "list", "--older-than", "soon")).exit_code == 2
    assert (await sift_dlq(samples, "list", "--queue", "nope")).exit_code == 2
    assert (await sift_dlq(samples, "show", "no-such-message")).exit_code == 1
    await samples.expect(6, 0)


async def test_replay_that_is_not_confirmed_leaves_the_dead_letter(samples: Samples) -> None:
    async with rabbit_channel(samples.rabbit_url) as channel:
        await channel.queue_delete(samples.work)  # nowhere to go: the publish comes back
    unroutable = await sift_dlq(samples, "replay", "--kind", "broker")
    assert unroutable.exit_code == 1
    assert f"moved 0 dead letters\n  left in {samples.dlq}: {samples.poison.event_id}" in (
        unroutable.stdout
    )
    assert "NO_ROUTE" in unroutable.stdout
    await wait_until_ready(samples.rabbit_url, samples.dlq, 6)
    listed = await sift_json(samples, "list")
    assert len(listed["messages"]) == 6
    assert listed["messages"][-1]["message_id"] == samples.poison.event_id  # still in its place


async def test_replay_moves_once_and_purge_needs_yes(samples: Samples) -> None:
    dry = await sift_json(samples, "replay", "--reason", "language", "--dry-run")
    assert dry["count"] == 3
    await samples.expect(6, 0)

    moved = await sift_json(samples, "replay", "--reason", "language")
    language_ids = {event.event_id for event in samples.language}
    [queue] = [queue for queue in moved["queues"] if queue["count"]]
    assert (queue["target"], set(queue["message_ids"])) == (samples.work, language_ids)
    await samples.expect(3, 3)
    await _assert_replayed_copies(samples, samples.language)
    assert (await sift_json(samples, "replay", "--reason", "language"))["count"] == 0
    await samples.expect(3, 3)

    refused = await sift_dlq(samples, "purge", "--reason", "too short")
    assert refused.exit_code == 1
    assert "--yes" in refused.output
    await samples.expect(3, 3)
    purged = await sift_json(samples, "purge", "--reason", "too short", "--yes")
    assert purged["count"] == 2
    await samples.expect(1, 3)

    broker_side = await sift_dlq(samples, "replay", "--kind", "broker")
    assert broker_side.exit_code == 0, broker_side.output
    assert f"moved 1 dead letter\n  {samples.dlq} → {samples.work}: 1" in broker_side.stdout
    await samples.expect(0, 4)
    await _assert_replayed_copies(samples, [*samples.language, samples.poison])

    seen: list[DocumentCollected] = []

    async def accept(event: DocumentCollected) -> None:
        seen.append(event)

    async with running_consumer(samples.rabbit_url, samples.topology, SPEC, accept):
        await wait_until(lambda: len(seen) == 4)
    assert sorted(e.event_id for e in seen) == sorted([*language_ids, samples.poison.event_id])
    await samples.expect(0, 0)


async def _assert_replayed_copies(samples: Samples, events: list[DocumentCollected]) -> None:
    """The work queue holds exactly `events`, as published, plus one replay; put back."""
    async with rabbit_channel(samples.rabbit_url) as channel:
        work = await channel.declare_queue(samples.work, passive=True)
        held = []
        while (message := await work.get(no_ack=False, fail=False)) is not None:
            held.append(message)
        copies = {message.message_id: message for message in held}
        assert set(copies) == {event.event_id for event in events}
        for event in events:
            copy = copies[event.event_id]
            assert copy.correlation_id == event.correlation_id
            assert copy.body == event.model_dump_json().encode()
            assert copy.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            assert copy.content_type == "application/json"
            assert copy.headers[SCHEMA_VERSION_HEADER] == 1
            assert copy.headers[REPLAYED_HEADER] == 1
            assert not set(copy.headers) & (DROPPED_ON_REPLAY - {"x-delivery-count"})
        for message in held:
            await message.nack(requeue=True)
