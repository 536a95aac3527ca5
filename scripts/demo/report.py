"""What the pipeline did: counts from the collector's metrics and the archiver's status, the
dead-lettered messages with their reasons, and a few queries of the store."""

import re
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from sift_common.messaging.topology import DEAD_LETTER_REASON_HEADER

_SAMPLE = re.compile(r"^(sift_collector_(?:source_)?documents_total)\{([^}]*)\} ([0-9.e+]+)$")


def collector_counts(collector_url: str) -> dict[str, int]:
    """Published / duplicate / rejected documents summed over publishers and sources."""
    counts: dict[str, int] = {}
    for line in httpx.get(f"{collector_url}/metrics", timeout=10).text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        outcome = re.search(r'outcome="([^"]*)"', match.group(2))
        if outcome is not None:
            counts[outcome.group(1)] = counts.get(outcome.group(1), 0) + int(float(match.group(3)))
    return counts


async def dead_letters(rabbit_url: str, queue: str, limit: int = 100) -> list[dict[str, str]]:
    """The DLQ's messages and reasons, read and put back (nothing is consumed)."""
    connection = await aio_pika.connect(rabbit_url)
    found: list[dict[str, str]] = []
    try:
        channel = await connection.channel()
        dlq = await channel.declare_queue(queue, passive=True)
        held = []
        for _ in range(limit):
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            reason = message.headers.get(DEAD_LETTER_REASON_HEADER, "(no reason header)")
            found.append(
                {
                    "queue": queue,
                    "reason": str(reason),
                    "body": message.body[:120].decode(errors="replace"),
                }
            )
        for message in held:
            await message.nack(requeue=True)
    finally:
        await connection.close()
    return found


def failed_files(drop: Path) -> list[dict[str, str]]:
    return [
        {"file": reason.name.removesuffix(".reason"), "reason": reason.read_text().strip()}
        for reason in sorted((drop / "failed").glob("*.reason"))
    ]


def queries(archiver_url: str) -> dict[str, Any]:
    headers = {"X-API-Key": "dev-key"}
    with httpx.Client(base_url=archiver_url, headers=headers, timeout=60) as client:

        def get(path: str, **params: Any) -> Any:
            answer = client.get(path, params=params)
            answer.raise_for_status()
            return answer.json()

        ranked = {"window_days": 3650, "limit": 5, "min_documents": 3}
        top = get("/v1/rankings", direction="top", **ranked)["items"]
        bottom = get("/v1/rankings", direction="bottom", **ranked)["items"]
        search = get("/v1/search", q="chip maker revenue beats estimates", k=5)["items"]
        entity = get(f"/v1/entities/{top[0]['entity_key']}") if top else None
    return {"top": top, "bottom": bottom, "search": search, "entity": entity}
