"""Feeding a ledger's documents the way publishers do, riding out the faults the way a decent
publisher would: the ingest API (resend a batch on 5xx or a broken connection), the AMQP
intake (resend what the broker did not confirm), and `document.collected` straight onto the
exchange (the analyzer's input, for bursts of copies and poison documents)."""

import asyncio
import json
import time
from dataclasses import dataclass, field

import aio_pika
import httpx

from sift_common.contracts import Document, DocumentCollected
from tests.support.ledger import FedDocument, Ledger

API_KEY = "dev-key"
BATCH = 5
RETRY_PAUSE_S = 0.5  # a 503's Retry-After (5 s) is honoured up to this: the tests wait, not sleep
GIVE_UP_S = 240.0


@dataclass
class FeedStats:
    requests: int = 0
    open_requests: int = 0
    accepted: int = 0  # documents answered published or duplicate
    duplicates: int = 0
    resent: int = 0  # batches or messages sent again after a failure
    failures: list[str] = field(default_factory=list)
    done: bool = False

    def note(self, failure: str) -> None:
        self.resent += 1
        if len(self.failures) < 5:
            self.failures.append(failure[:200])


class Pace:
    """Item i of n is not sent before start + i × spread / n (spread 0: all at once)."""

    def __init__(self, items: int, spread_s: float) -> None:
        self._start, self._step = time.monotonic(), spread_s / max(items, 1)

    async def wait(self, index: int) -> None:
        delay = self._start + index * self._step - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def feed_api(
    url: str,
    ledger: Ledger,
    docs: list[FedDocument],
    stats: FeedStats,
    spread_s: float = 0.0,
    *,
    batch: int = BATCH,
    workers: int = 3,
) -> None:
    """POST /v1/documents in batches of `batch`, `workers` requests in flight, each resent until
    accepted."""
    batches = [docs[i : i + batch] for i in range(0, len(docs), batch)]
    pace = Pace(len(batches), spread_s)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": API_KEY}, timeout=30) as http:
        queue: asyncio.Queue[tuple[int, list[FedDocument]]] = asyncio.Queue()
        for numbered in enumerate(batches):
            queue.put_nowait(numbered)

        async def worker() -> None:
            while not queue.empty():
                index, documents = queue.get_nowait()
                await pace.wait(index)
                await _post_until_accepted(http, ledger, documents, stats)

        await asyncio.gather(*(worker() for _ in range(workers)))


async def _post_until_accepted(
    http: httpx.AsyncClient, ledger: Ledger, batch: list[FedDocument], stats: FeedStats
) -> None:
    payload = {"documents": [doc.incoming(ledger.source) for doc in batch]}
    deadline = time.monotonic() + GIVE_UP_S
    while True:
        stats.requests += 1
        stats.open_requests += 1
        try:
            answer = await http.post("/v1/documents", json=payload)
        except httpx.TransportError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        else:
            if answer.status_code == 202:
                items = answer.json()["accepted"]
                stats.accepted += len(items)
                stats.duplicates += sum(item["status"] == "duplicate" for item in items)
                return
            if answer.status_code < 500 and answer.status_code != 429:
                raise AssertionError(
                    f"collector refused a batch: {answer.status_code} {answer.text}"
                )
            failure = f"{answer.status_code}: {answer.text[:150]}"
        finally:
            stats.open_requests -= 1
        stats.note(failure)
        if time.monotonic() > deadline:
            raise AssertionError(f"collector never accepted a batch: {failure}")
        await asyncio.sleep(RETRY_PAUSE_S)


def intake_body(ledger: Ledger, doc: FedDocument) -> bytes:
    """A DocumentSubmitted as an AMQP publisher writes it: plain JSON, no Sift code."""
    return json.dumps(
        {"correlation_id": doc.external_id, "document": doc.incoming(ledger.source)}
    ).encode()


def collected_body(ledger: Ledger, doc: FedDocument) -> bytes:
    """A document.collected event, as the collector would publish it (its ids derived)."""
    document = Document.create(
        source=ledger.source,
        body=doc.body,
        external_id=doc.external_id,
        title=doc.title,
        kind="generic",
        language="en",
    )
    return (
        DocumentCollected(correlation_id=document.id, document=document).model_dump_json().encode()
    )


async def publish_amqp(
    rabbit_url: str,
    exchange: str,
    routing_key: str,
    bodies: list[bytes],
    stats: FeedStats,
    spread_s: float = 0.0,
) -> None:
    """Publish persistent messages with confirms; reconnect and resend what was not confirmed."""
    pending = list(bodies)
    pace = Pace(len(bodies), spread_s)
    deadline = time.monotonic() + GIVE_UP_S
    while pending:
        try:
            connection = await aio_pika.connect(rabbit_url, timeout=5)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                target = await channel.get_exchange(exchange, ensure=True)
                while pending:
                    await pace.wait(len(bodies) - len(pending))
                    message = aio_pika.Message(
                        pending[0],
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    )
                    await target.publish(message, routing_key=routing_key, timeout=10)
                    pending.pop(0)
                    stats.accepted += 1
        except (aio_pika.exceptions.AMQPError, OSError, TimeoutError, RuntimeError) as exc:
            stats.note(f"{type(exc).__name__}: {exc}")
            if time.monotonic() > deadline:
                raise AssertionError(f"broker never took the documents: {exc!r}") from exc
            await asyncio.sleep(RETRY_PAUSE_S)
