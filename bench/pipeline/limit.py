"""Part `limit`: the pipeline against the LLM engine's own pace.

A real vLLM-CPU chat server (a PRIVATE one started with the runtime's own command line,
tests/support/private_vllm.py, or `--chat-url`) serves the model. First the engine alone: the
analyzer's exact request bodies (its profile, prompt, worked examples and JSON schema, built by
the analyzer's own functions and `sift_common.gateway_client.chat_body`) for fresh documents,
sent straight to vLLM at each concurrency of `--raw-concurrency`; the best rate is the limit.
Then the gateway's `chat` alias is switched to that server (`PUT /admin/aliases/chat`) and
`--limit-docs` fresh documents of the same shape go through the whole pipeline, ingest API to
committed rows, and the engine alone once more at its best concurrency (the ratios divide by
the mean of the two raw runs, so a shared machine's drift shows instead of biasing one side).
Every run has documents of its own, so vLLM's prefix cache helps neither side
more than the other (the shared system prompt and examples are cached for both).

The small model's output is sometimes invalid under the profile's checks: the analyzer asks
once for a repair, and a document still invalid is dead-lettered `invalid`, by design. So the
pipeline's count is documents finished (stored, or dead-lettered `invalid`; a loss, a double or
any other dead letter is `BenchInvalid`), with the chat calls the gateway logged for them, and
three ratios: documents/s ÷ raw requests/s (the issue's target, ≥ 0.9), LLM calls/s and
output tokens/s ÷ the raw run's (how busy the pipeline keeps the engine, whatever else the
documents cost: repairs, and the entity digests the archiver asks for as documents arrive,
which the raw run does not make; every test document names an entity of its own, so here each
asks for one).
"""

import argparse
import asyncio
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from aio_pika.exceptions import AMQPError

from bench.archive import BenchInvalid
from bench.pipeline.bed import processes
from bench.pipeline.measure import Meter, wait_stored
from sift_analyzer.core import document_messages
from sift_analyzer.profiles import load_profiles
from sift_analyzer.settings import BUNDLED_PROFILES
from sift_common.contracts import DocumentCollected
from sift_common.gateway_client import chat_body
from sift_common.messaging.topology import ANALYZER_DOCUMENTS, ANALYZER_ENTITY_REFRESH
from sift_gateway.chat import REPLAYED
from tests.faults import observe
from tests.faults.feeding import FeedStats, collected_body, feed_api
from tests.faults.rig import FAKE_CHAT, FAST_PROFILE, REAL_CHAT, Rig
from tests.faults.scenario import queues_drained
from tests.support.ledger import FedDocument, Ledger
from tests.support.private_vllm import PrivateVllmChat
from tests.support.vllm import served_model

# The engine's own admission: vLLM-CPU levels off from ~32 requests at once
# (../notes: ~3.6–3.8 requests/s), so the gateway lets that many through.
IN_FLIGHT = 32
REAL_TIMEOUTS = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}
WARM_UP_REQUESTS = 4
LOG_FLUSH_S = 2.0  # the gateway writes its request log every second
# Chat calls in the window, told apart by the analyzer's request id: `<document id[:16]>:<type>`
# (`:repair` appended for a repair turn) for the ledger's documents; anything else is a digest.
# A retry the gateway answered from an earlier call (upstream `replay`) is no call.
CALLS = f"""
SELECT count(*) AS calls, count(*) FILTER (WHERE status_code = 200) AS ok,
       count(*) FILTER (WHERE ours) AS analysis,
       count(*) FILTER (WHERE ours AND request_id LIKE '%:repair') AS repairs,
       count(*) FILTER (WHERE NOT ours) AS digests,
       coalesce(sum(completion_tokens), 0) AS completion_tokens
FROM (SELECT *, split_part(request_id, ':', 1) = ANY($4::text[]) AS ours
      FROM gateway.request_logs) AS logged
WHERE profile = $1 AND created_at BETWEEN to_timestamp($2) AND to_timestamp($3)
  AND upstream IS DISTINCT FROM '{REPLAYED}'"""


@dataclass
class Engine:
    """The chat engine the part measures: a PRIVATE vLLM-CPU server whose port (so the
    gateway's profile) is fixed before the services start and which starts only when the part
    runs, or a server already running (`--chat-url`)."""

    url: str
    model: str
    server: PrivateVllmChat | None = None
    startup_s: float | None = None

    @classmethod
    def choose(cls, root: Path, chat_url: str | None) -> "Engine":
        if chat_url:
            model = served_model(chat_url.rstrip("/"))
            if model is None:
                raise SystemExit(f"--chat-url {chat_url}: no model listed at /v1/models")
            return cls(chat_url.rstrip("/"), model)
        server = PrivateVllmChat(root / "vllm-chat.log")
        return cls(server.url, server.model, server)

    async def start(self) -> None:
        if self.server is not None and self.startup_s is None:
            self.startup_s = round(await asyncio.to_thread(self.server.start), 1)

    def stop(self) -> None:
        if self.server is not None and self.startup_s is not None:
            self.server.stop()


def limit_profile(url: str, model: str) -> dict[str, Any]:
    """The gateway's profile for the real engine: production-like timeouts, priority
    scheduling (the runtime starts vLLM with `--scheduling-policy priority`)."""
    return {
        **FAST_PROFILE, "kind": "chat", "served_model": model, "replicas": [url],
        "priority_scheduling": True, "timeouts": REAL_TIMEOUTS,
        "max_in_flight_per_replica": IN_FLIGHT,
    }  # fmt: skip


def document_id(ledger: Ledger, doc: FedDocument) -> str:
    """The id the collector gives the ledger document (derived from source, id and content)."""
    return DocumentCollected.model_validate_json(collected_body(ledger, doc)).document.id


def analyzer_bodies(ledger: Ledger, count: int, model: str) -> list[dict[str, Any]]:
    """`count` fresh ledger documents as the analyzer would ask for them, addressed to `model`."""
    profiles = load_profiles(BUNDLED_PROFILES)
    bodies = []
    for doc in ledger.add(count, "raw"):
        document = DocumentCollected.model_validate_json(collected_body(ledger, doc)).document
        profile = profiles.for_kind(document.kind)
        messages = document_messages(profile, document)
        bodies.append(
            chat_body(messages, model, profile.max_tokens, profile.temperature,
                      profile.json_schema, profile.analysis_type)
        )  # fmt: skip
    return bodies


async def raw_level(url: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Every body sent straight to vLLM, `concurrency` at a time; each must be answered 200."""
    gate = asyncio.Semaphore(concurrency)
    tokens: list[int] = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:

        async def one(body: dict[str, Any]) -> None:
            async with gate:
                answer = await http.post("/v1/chat/completions", json=body)
            if answer.status_code != 200:
                raise BenchInvalid(f"raw vLLM answered {answer.status_code}: {answer.text[:300]}")
            tokens.append(int(answer.json()["usage"]["completion_tokens"]))

        started = time.monotonic()
        await asyncio.gather(*(one(body) for body in bodies))
        wall = time.monotonic() - started
    if len(tokens) != len(bodies) or not all(tokens):
        raise BenchInvalid(f"raw: {len(tokens)} answers of {len(bodies)}, some empty")
    return {
        "concurrency": concurrency, "requests": len(bodies), "wall_s": round(wall, 2),
        "requests_per_s": round(len(bodies) / wall, 3),
        "output_tokens_per_s": round(sum(tokens) / wall, 1),
        "completion_tokens_mean": round(sum(tokens) / len(tokens), 1),
    }  # fmt: skip


async def raw_sweep(url: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    """A warm-up, then each concurrency level on documents of its own; the best level."""
    await raw_level(url, analyzer_bodies(Ledger("warm"), WARM_UP_REQUESTS, model), 4)
    levels = []
    for concurrency in args.raw_concurrency:
        bodies = analyzer_bodies(Ledger(f"raw{concurrency}"), args.raw_docs, model)
        levels.append(await raw_level(url, bodies, concurrency))
        print(f"  raw vLLM, {concurrency} at once: {levels[-1]['requests_per_s']} requests/s")
    best = max(levels, key=lambda level: float(level["requests_per_s"]))
    return {"levels": levels, "best": best}


async def switch_chat(rig: Rig, profile: str) -> None:
    """Point the gateway's `chat` alias at `profile` and wait until the gateway is ready."""
    gateway = rig.pipeline.services["gateway"].url
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        switched = await http.put("/admin/aliases/chat", json={"profile": profile})
        switched.raise_for_status()
    rig.chat_profile = profile
    await rig.ready("gateway", 300)


async def documents_dead_lettered(rig: Rig) -> int:
    """Documents the analyzer dead-lettered so far (a digest's dead letter is no document); a
    broker too busy to answer this poll counts none (the next poll asks again)."""
    try:
        return await observe.dead_letter_depth(rig, (ANALYZER_DOCUMENTS,))
    except (TimeoutError, AMQPError, OSError):
        return 0


async def checked_finish(rig: Rig, ledger: Ledger, drain_s: float) -> dict[str, Any]:
    """Stored once, or dead-lettered `invalid` (taken off the DLQ, a digest's too); nothing
    else, and nothing left once the digests the documents asked for are done."""
    if busy := await queues_drained(rig, drain_s, dead_letters=False):  # the digests are done
        raise BenchInvalid(f"limit: work left in the queues after {drain_s:g} s: {busy}")
    letters = await observe.take_dead_letters(rig, ledger)
    left = await queues_drained(rig, 15.0)
    other = [letter.as_dict() for letter in letters if letter.kind != "invalid"]
    # A digest's message names its entity, which the model may have made of a document's
    # marker: only the documents queue's dead letters are documents not stored.
    invalid = {
        marker
        for letter in letters
        if letter.kind == "invalid" and letter.queue == ANALYZER_DOCUMENTS.name
        for marker in letter.markers
    }
    verdict, _ = await observe.verdict(rig, ledger, invalid)
    problems = [*verdict.problems(), *(f"dead letter: {o}" for o in other)]
    if left:
        problems.append(f"messages left in queues: {left}")
    if problems:
        raise BenchInvalid(f"limit: {'; '.join(problems)}")
    digests_invalid = sum(letter.queue == ANALYZER_ENTITY_REFRESH.name for letter in letters)
    return {"fed": len(ledger.documents), "stored": verdict.stored_once,
            "dead_lettered_invalid": len(invalid), "digests_dead_lettered_invalid":
            digests_invalid, "left_in_queues": left}  # fmt: skip


async def through_pipeline(rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    ledger = Ledger("limit")
    fed = ledger.add(args.limit_docs, "api")
    collector = rig.pipeline.services["collector"].url
    with Meter(processes(rig)) as meter:
        started = time.time()
        await feed_api(collector, ledger, fed, FeedStats(), 0.0, batch=args.batch, workers=4)
        await wait_stored(rig, ledger, args.timeout, partial(documents_dead_lettered, rig))
        finished = time.time()
        usage = meter.result(len(fed))
    effect = await checked_finish(rig, ledger, args.timeout)
    await asyncio.sleep(LOG_FLUSH_S)
    prefixes = [document_id(ledger, doc)[:16] for doc in fed]
    conn = await rig.connect()
    try:
        calls = await conn.fetchrow(CALLS, REAL_CHAT, started, finished, prefixes)
    finally:
        await conn.close()
    assert calls is not None
    wall = finished - started
    return {
        "docs": len(fed), "wall_s": round(wall, 2), "docs_per_s": round(len(fed) / wall, 3),
        "llm_calls": dict(calls), "llm_calls_per_doc": round(calls["analysis"] / len(fed), 3),
        "llm_calls_per_s": round(calls["calls"] / wall, 3),
        "output_tokens_per_s": round(calls["completion_tokens"] / wall, 1), "effect": effect,
        "processes": usage,
    }  # fmt: skip


async def limit(rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    """Raw engine first, then the pipeline on the same engine, then the raw engine again at its
    best concurrency (a shared machine drifts: the ratios use the mean of the two raw runs).
    The engine is `args.engine` (an `Engine`: the bed wrote its profile before the services
    started)."""
    engine: Engine = args.engine
    await engine.start()
    url, model = engine.url, engine.model
    raw = await raw_sweep(url, model, args)
    await switch_chat(rig, REAL_CHAT)
    try:
        pipeline = await through_pipeline(rig, args)
    finally:
        await switch_chat(rig, FAKE_CHAT)
    best = raw["best"]
    bodies = analyzer_bodies(Ledger("rawafter"), args.raw_docs, model)
    raw["after"] = await raw_level(url, bodies, best["concurrency"])
    rate, tokens = (
        (float(best[key]) + float(raw["after"][key])) / 2
        for key in ("requests_per_s", "output_tokens_per_s")
    )
    return {
        "engine": {"url": url, "model": model, "gateway_in_flight": IN_FLIGHT,
                   "startup_s": engine.startup_s},
        "raw": raw, "pipeline": pipeline, "raw_requests_per_s": round(rate, 3),
        "docs_per_s_over_raw": round(pipeline["docs_per_s"] / rate, 3),
        "llm_calls_per_s_over_raw": round(pipeline["llm_calls_per_s"] / rate, 3),
        "output_tokens_per_s_over_raw": round(pipeline["output_tokens_per_s"] / tokens, 3),
    }  # fmt: skip
