"""What a scenario reads back: the store (through the ledger), the dead-letter queues, LLM calls
at the FAKE upstream and at the gateway, and the services' logs since the fault struck."""

import asyncio
import json
import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from sift_common.messaging.topology import (
    ALL_CONSUMER_QUEUES,
    DEAD_LETTER_KIND_HEADER,
    DEAD_LETTER_REASON_HEADER,
    ConsumerQueue,
    Topology,
)
from sift_common.store.models import EMBEDDING_DIM
from sift_gateway.chat import REPLAYED
from tests.faults.rig import NAMESPACE, Rig
from tests.support.ledger import STORE_QUERY, Ledger, StoredRow, Verdict, calls_per_document, judge

TOPOLOGY = Topology(NAMESPACE)


async def store_rows(rig: Rig, ledger: Ledger) -> list[StoredRow]:
    conn = await rig.connect()
    try:
        records = await conn.fetch(STORE_QUERY, ledger.source, f"LGR{ledger.tag}x", EMBEDDING_DIM)
    finally:
        await conn.close()
    return [StoredRow(*record.values()) for record in records]


async def verdict(rig: Rig, ledger: Ledger, skip: set[str]) -> tuple[Verdict, list[StoredRow]]:
    rows = await store_rows(rig, ledger)
    return judge(ledger, rows, skip), rows


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    kind: str
    reason: str
    markers: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "kind": self.kind, "reason": self.reason[:300],
                "documents": list(self.markers)}  # fmt: skip


async def dead_letter_depth(
    rig: Rig, queues: Iterable[ConsumerQueue[Any]] = ALL_CONSUMER_QUEUES
) -> int:
    """Messages waiting in the namespace's DLQs of `queues` (passive declares)."""
    connection = await aio_pika.connect(rig.rabbit.url, timeout=10)
    async with connection:
        channel = await connection.channel()
        total = 0
        for spec in queues:
            queue = await channel.declare_queue(TOPOLOGY.dead_letter_queue(spec), passive=True)
            total += queue.declaration_result.message_count or 0
        return total


async def take_dead_letters(rig: Rig, ledger: Ledger) -> list[DeadLetter]:
    """Every message in the namespace's DLQs, taken off (so the next scenario starts clean),
    with its reason headers and the ledger documents its body names."""
    taken: list[DeadLetter] = []
    connection = await aio_pika.connect(rig.rabbit.url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for spec in ALL_CONSUMER_QUEUES:
            name = TOPOLOGY.dead_letter_queue(spec)
            queue = await channel.declare_queue(name, passive=True)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                headers = message.headers or {}
                text = message.body.decode(errors="replace")
                taken.append(
                    DeadLetter(
                        spec.name,
                        str(headers.get(DEAD_LETTER_KIND_HEADER, "(no kind header)")),
                        str(headers.get(DEAD_LETTER_REASON_HEADER, "(no reason header)")),
                        tuple(sorted(set(ledger.ours(text)))),
                    )
                )
    return taken


def chat_calls(rig: Rig, ledger: Ledger) -> Counter[str]:
    """Chat completions the FAKE upstream received per ledger document (probes excluded)."""
    texts = (json.dumps(r["body"].get("messages", [])) for r in rig.chat.chat_requests())
    return calls_per_document(ledger, texts)


def calls_of(rig: Rig, ledger: Ledger, marker: str, since: float) -> list[list[float | None]]:
    """When each chat call naming `marker` was opened and answered, in seconds from `since`
    (monotonic, the FAKE's clock): evidence of where a second call came from."""
    found: list[list[float | None]] = []
    for request in rig.chat.chat_requests():
        if marker in ledger.ours(json.dumps(request["body"].get("messages", []))):
            done = request.get("done")
            found.append(
                [round(request["at"] - since, 2), None if done is None else round(done - since, 2)]
            )
    return found


def markers_in_flight(rig: Rig, ledger: Ledger, at: float, grace_s: float) -> set[str]:
    """Ledger documents with a chat call open at `at` (or answered within `grace_s` before)."""
    found: set[str] = set()
    for request in rig.chat.chat_requests():
        done = request.get("done")
        if request["at"] <= at and (done is None or done >= at - grace_s):
            found.update(ledger.ours(json.dumps(request["body"].get("messages", []))))
    return found


def embedded_inputs(rig: Rig, ledger: Ledger) -> Counter[str]:
    """Texts the FAKE embedding upstream was asked to embed, per ledger document."""
    texts: list[str] = []
    for request in list(rig.embed.requests):
        if request["path"] == "/v1/embeddings":
            inputs = request["body"].get("input", [])
            texts += inputs if isinstance(inputs, list) else [inputs]
    return calls_per_document(ledger, texts)


def shared_embedding_requests(rig: Rig, ledger: Ledger, marker: str) -> int:
    """The most other ledger documents that shared one embedding request with `marker`'s
    document: evidence that a poison document travelled inside a batch."""
    most = 0
    for request in list(rig.embed.requests):
        inputs = request["body"].get("input", [])
        found = set(ledger.ours(json.dumps(inputs)))
        if marker in found:
            most = max(most, len(found) - 1)
    return most


# A row the gateway answered from an earlier call's kept answer (`sift_gateway.replay`) is no
# LLM call: the counts below leave it out.
UPSTREAM_CALL = f"upstream IS DISTINCT FROM '{REPLAYED}'"
GATEWAY_CALLS = f"""
SELECT count(*) AS calls, count(*) FILTER (WHERE status_code = 200) AS ok
FROM gateway.request_logs
WHERE profile = $2 AND split_part(request_id, ':', 1) = ANY($1::text[]) AND {UPSTREAM_CALL}"""


async def gateway_calls(rig: Rig, rows: list[StoredRow]) -> dict[str, float | None]:
    """Chat requests the gateway logged for the stored documents (the analyzer's request id
    starts with the document id's first 16 characters)."""
    prefixes = sorted({row.document_id[:16] for row in rows})
    conn = await rig.connect()
    try:
        record = await conn.fetchrow(GATEWAY_CALLS, prefixes, rig.chat_profile)
    finally:
        await conn.close()
    assert record is not None
    calls, ok = int(record["calls"]), int(record["ok"])
    return {"calls": calls, "ok": ok, "per_unique": round(calls / len(rows), 3) if rows else None}


def log_offsets(rig: Rig) -> dict[str, int]:
    return {
        name: service.log.stat().st_size if service.log.exists() else 0
        for name, service in rig.pipeline.services.items()
    }


def new_log_lines(rig: Rig, since: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """Warning and error lines each service logged after `since` (JSON lines; a traceback or
    other plain line counts as an error)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, service in rig.pipeline.services.items():
        path: Path = service.log
        if not path.exists():
            continue
        with path.open("rb") as log:
            log.seek(since.get(name, 0))
            lines = log.read().decode(errors="replace").splitlines()
        for line in lines:
            entry = _parsed(line)
            if entry.get("level") in ("warning", "error", "critical"):
                found.setdefault(name, []).append(entry)
    return found


def _parsed(line: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return {"level": "error" if "Error" in line else "plain", "message": line[:300]}
    return entry if isinstance(entry, dict) else {}


def seen_summary(lines: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per service: how many warnings/errors, and the first few distinct messages."""
    summary: dict[str, Any] = {}
    for name, entries in lines.items():
        messages: list[str] = []
        for entry in entries:
            message = str(entry.get("message", ""))[:160]
            if message not in messages and len(messages) < 3:
                messages.append(message)
        summary[name] = {"lines": len(entries), "samples": messages}
    return summary


DIAGNOSTIC_SAMPLES = ("in_flight", "queued", "inprogress", "in_progress")


async def diagnostics(rig: Rig) -> dict[str, Any]:
    """What each service reports in flight (its /metrics gauges), for a scenario that left
    messages unacknowledged: which hop holds them."""
    found: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for name, service in rig.pipeline.services.items():
            try:
                text = (await http.get(f"{service.url}/metrics")).text
            except httpx.HTTPError as exc:
                found[name] = repr(exc)
                continue
            found[name] = [
                line
                for line in text.splitlines()
                if not line.startswith("#") and any(k in line for k in DIAGNOSTIC_SAMPLES)
            ][:20]
    channels = await asyncio.to_thread(
        rig.rabbit.ctl, "list_channels", "--quiet", "name", "consumer_count",
        "messages_unacknowledged",
    )  # fmt: skip
    found["rabbitmq_channels"] = channels.stdout.splitlines()[:30]
    found["proxy_connections"] = rig.proxy.open_connections
    found["analyzer_task_dumps"] = await analyzer_task_dumps(rig)
    return found


async def analyzer_task_dumps(rig: Rig) -> dict[str, list[str]]:
    """Each analyzer's tasks (SIGUSR1 makes it log their stacks): what a held delivery waits on."""
    dumps: dict[str, list[str]] = {}
    for name, service in rig.pipeline.services.items():
        if not name.startswith("analyzer") or service.process is None:
            continue
        before = service.log.read_text(errors="replace") if service.log.exists() else ""
        service.process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(1.0)
        after = service.log.read_text(errors="replace")[len(before) :]
        dumps[name] = [
            line for line in after.splitlines() if "sift_analyzer" in line or "sift_common" in line
        ][:60]
    return dumps
