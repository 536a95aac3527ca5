"""Feeding the corpus through the real entry points: directory drop, feed, ingest API, AMQP."""

import functools
import json
import shutil
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from sift_common.contracts import DocumentSubmitted, IncomingDocument

API_KEY = "dev-key"
BATCH = 50


@dataclass
class Refusal:
    entry_point: str
    what: str
    reason: str


@dataclass
class Fed:
    api_published: int = 0
    api_duplicates: int = 0
    refused: list[Refusal] = field(default_factory=list)
    amqp_sent: int = 0


def serve_directory(folder: Path, port: int) -> ThreadingHTTPServer:
    """A local HTTP server for the feed file (the collector's feed source polls it)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def prepare_drop(data: Path, work: Path) -> Path:
    """Copy the drop files into a work folder (the directory source moves what it reads)."""
    drop = work / "drop"
    if drop.exists():
        shutil.rmtree(drop)
    drop.mkdir(parents=True)
    for path in sorted((data / "drop").iterdir()):
        shutil.copy(path, drop / path.name)
    return drop


def sources_yaml(path: Path, drop: Path, feed_url: str) -> Path:
    sources = {
        "sources": [
            {
                "name": "demo-drop",
                "type": "directory",
                "path": str(drop),
                "interval_s": 2,
                "jitter": 0,
            },
            {
                "name": "demo-wire",
                "type": "rss",
                "url": feed_url,
                "interval_s": 5,
                "jitter": 0,
                "kind": "news",
            },
        ]
    }
    path.write_text(json.dumps(sources))  # JSON is YAML
    return path


def submit_api(collector_url: str, corpus: dict[str, Any], fed: Fed) -> None:
    headers = {"X-API-Key": API_KEY}
    docs = [{"source": "demo-api", **d} for d in corpus["documents"]]
    with httpx.Client(base_url=collector_url, headers=headers, timeout=60) as client:
        for start in range(0, len(docs), BATCH):
            answer = client.post("/v1/documents", json={"documents": docs[start : start + BATCH]})
            answer.raise_for_status()
            for item in answer.json()["accepted"]:
                fed.api_published += item["status"] == "published"
                fed.api_duplicates += item["status"] == "duplicate"
        for bad in corpus["malformed"]:  # one request each: a batch is all-or-nothing
            answer = client.post("/v1/documents", json={"source": "demo-api", **bad})
            if answer.status_code != 422:
                raise RuntimeError(f"malformed record answered {answer.status_code}: {bad}")
            errors = answer.json()["error"]["errors"]
            reason = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
            fed.refused.append(
                Refusal("api", bad.get("external_id", bad.get("title", "?")), reason)
            )


async def publish_amqp(rabbit_url: str, exchange: str, corpus: dict[str, Any], fed: Fed) -> None:
    events = [
        DocumentSubmitted(
            correlation_id=d.get("external_id") or "amqp",
            document=IncomingDocument.model_validate({"source": "demo-amqp", **d}),
        )
        for d in corpus["documents"] + corpus["malformed_documents"]
    ]
    bodies = [event.model_dump_json().encode() for event in events]
    bodies += [raw.encode() for raw in corpus["malformed_raw"]]
    connection = await aio_pika.connect(rabbit_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange, ensure=True)
        for body in bodies:
            message = aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await target.publish(message, routing_key=DocumentSubmitted.ROUTING_KEY)
            fed.amqp_sent += 1
    finally:
        await connection.close()
