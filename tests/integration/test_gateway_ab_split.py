"""A/B splits of a gateway alias (real PostgreSQL, FAKE upstreams, two gateway replicas on one
database): an 80/20 split lands within ±5 % over 1,000 documents, counted at the FAKE
upstreams and in the request log; a document always gets the same arm, on either replica;
GatewayClient's sticky key and the answering profile travel through to the analyses the real
archiver writer stores; `sift report --json` gives per-arm numbers that match what was sent;
promoting an arm ends the split and is recorded."""

import asyncio
import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from scripts.processes import free_port
from sift_archiver.cli import app as sift
from sift_archiver.pool import asyncpg_dsn, init_connection
from sift_archiver.rows import batch_rows
from sift_archiver.writer import write_batch
from sift_common.contracts import DocumentAnalyzed
from sift_common.gateway_client import GatewayClient
from sift_common.store import migrate
from tests.support.archiver import analyzed
from tests.support.gateway import (
    HI,
    RunningGateway,
    StartFake,
    chat_profile,
    client,
    eventually,
    gateway_replicas,
    metric,
)

pytestmark = pytest.mark.integration

WEIGHTS = {"arm-a": 80, "arm-b": 20}
DOCUMENTS = [hashlib.sha256(f"doc-{n}".encode()).hexdigest() for n in range(1000)]
# 1,000 requests, 100 at a time, through two gateways and two FAKE upstreams in this one event
# loop: on a loaded machine the test profiles' 5 s first-token limit and 5-failure breaker once
# took arm-a out (a 503 "no replica available"), which this test is not about.
PATIENT: dict[str, Any] = {
    "max_queue_wait_s": 60.0,
    "timeouts": {"connect_s": 10.0, "ttft_s": 60.0, "stall_s": 60.0, "total_s": 120.0},
    "breaker": {"failure_threshold": 1000},
}
NO_BROKER = f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # the report's DLQ part: unknown


def replicas(
    tmp_path: Path, profiles: dict[str, dict[str, Any]], database: str
) -> AbstractAsyncContextManager[tuple[RunningGateway, RunningGateway]]:
    """Two gateway replicas on one database, each logging its requests there."""
    return gateway_replicas(
        tmp_path, profiles, {"chat": "arm-a"}, database, gateway_request_log=True
    )


async def send(
    targets: Sequence[tuple[httpx.AsyncClient, str, str]], concurrency: int = 100
) -> dict[str, str]:
    """(client, sticky key, request id) → sticky key: the profile that answered."""
    gate, arms = asyncio.Semaphore(concurrency), {}

    async def one(http: httpx.AsyncClient, key: str, request_id: str) -> None:
        async with gate:
            response = await http.post(
                "/v1/chat/completions",
                json={"model": "chat", "messages": HI},
                headers={"x-sift-sticky-key": key, "x-request-id": request_id},
            )
        assert response.status_code == 200, response.text
        arms[key] = response.headers["x-sift-profile"]

    await asyncio.gather(*(one(*target) for target in targets))
    return arms


def percentile(values: Sequence[float], q: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def analyses_through_the_client(url: str, gateway: str) -> list[DocumentAnalyzed]:
    """Forty analyses as the analyzer makes them: GatewayClient asked with the document id as
    sticky key (every fourth one with a repair turn), the answering profile carried into the
    event, stored by the real archiver writer."""

    async def one(n: int, llm: GatewayClient) -> DocumentAnalyzed:
        event = analyzed(f"Doc {n}", f"Body of document {n}.", score=float(n * 2.5))
        key, repaired = event.document.id, n % 4 == 0
        rid = f"{key[:16]}:news"
        answer = await llm.chat(HI, request_id=rid, sticky_key=key)
        if repaired:
            again = await llm.chat(HI, request_id=f"{rid}:repair", sticky_key=key)
            assert again.profile == answer.profile  # both turns on one arm
        carried = {"gateway_profile": answer.profile, "repaired": repaired}
        return event.model_copy(update={"analysis": event.analysis.model_copy(update=carried)})

    async with GatewayClient(gateway) as llm:
        events = await asyncio.gather(*(one(n, llm) for n in range(40)))
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await init_connection(connection)
        rows = batch_rows(events, words=50, overlap=5)
        await write_batch(connection, rows, "minilm", [[0.1] * 384 for _ in rows.chunks])
    finally:
        await connection.close()
    return events


async def report(url: str, *args: str) -> str:
    env = {"SIFT_DATABASE_URL": url, "SIFT_RABBIT_URL": NO_BROKER, "COLUMNS": "250"}
    invoke = CliRunner().invoke
    result = await asyncio.to_thread(invoke, sift, ["report", "--since", "1h", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def test_an_80_20_split_is_sticky_shared_within_5_percent_and_reported_per_arm(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    fake_a, fake_b = await fakes(model="fake-a"), await fakes(model="fake-b")
    profiles = {
        "arm-a": chat_profile(fake_a.url, served_model="fake-a", **PATIENT),
        "arm-b": chat_profile(fake_b.url, served_model="fake-b", **PATIENT),
    }
    async with (
        replicas(tmp_path, profiles, fresh_database) as (a, b),
        client(a) as http_a,
        client(b) as http_b,
    ):
        split = await http_a.put("/admin/aliases/chat/split", json={"weights": WEIGHTS})
        assert (split.status_code, split.json()["outcome"]) == (200, "split"), split.text
        assert list(split.json()["numbers"]["checked"]) == ["arm-b"]  # the new arm, warmed up
        await eventually(lambda: b.state.registry.splits.get("chat") == WEIGHTS, timeout=2)
        before = len(fake_a.chat_requests()), len(fake_b.chat_requests())

        https = (http_a, http_b)
        arms = await send([(https[n % 2], d, f"ab-{n}") for n, d in enumerate(DOCUMENTS)])
        at_a = len(fake_a.chat_requests()) - before[0]
        at_b = len(fake_b.chat_requests()) - before[1]
        print(f"80/20 over 1000 documents: {at_a} on arm-a, {at_b} on arm-b")
        assert at_a + at_b == 1000
        assert abs(at_a / 1000 - 0.80) <= 0.05
        assert Counter(arms.values()) == {"arm-a": at_a, "arm-b": at_b}

        # The same documents again, each through the other replica: the same arm.
        repeats = [(https[(n + 1) % 2], d, f"again-{n}") for n, d in enumerate(DOCUMENTS[:200])]
        again = await send(repeats)
        assert again == {d: arms[d] for d in DOCUMENTS[:200]}

        events = await analyses_through_the_client(fresh_database, a.url)
        served = [e.analysis.gateway_profile for e in events]
        served += [e.analysis.gateway_profile for e in events if e.analysis.repaired]
        during = Counter(arms.values()) + Counter(again.values()) + Counter(served)
        for arm in WEIGHTS:
            per_replica = [
                await metric(http, "sift_gateway_arm_requests_total", alias="chat", arm=arm)
                for http in https
            ]
            assert sum(per_replica) == during[arm]

        promoted = await http_b.post("/admin/aliases/chat/promote", json={"profile": "arm-b"})
        assert (promoted.status_code, promoted.json()["outcome"]) == (200, "promoted")
        assert promoted.json()["numbers"]["ended_split"] == WEIGHTS
        await eventually(lambda: "chat" not in a.state.registry.splits, timeout=2)
        after = await send([(https[n % 2], d, f"after-{n}") for n, d in enumerate(DOCUMENTS[:99])])
        assert set(after.values()) == {"arm-b"}

    connection = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        logged_arms = await connection.fetch(
            "SELECT profile, count(*) FROM gateway.request_logs"
            " WHERE model = 'chat' AND request_id LIKE 'ab-%' GROUP BY profile"
        )
        switches = await connection.fetch(
            "SELECT from_profile, to_profile, outcome, numbers FROM gateway.alias_switches"
            " ORDER BY id"
        )
        alias = await connection.fetchrow("SELECT profile, weights FROM gateway.aliases")
    finally:
        await connection.close()
    assert dict(logged_arms) == {"arm-a": at_a, "arm-b": at_b}  # the request log agrees
    assert [(s["from_profile"], s["to_profile"], s["outcome"]) for s in switches] == [
        ("arm-a", "arm-a", "split"),
        ("arm-a", "arm-b", "promoted"),
    ]
    assert json.loads(switches[0]["numbers"])["weights"] == WEIGHTS
    assert (alias["profile"], alias["weights"]) == ("arm-b", None)

    (test,) = json.loads(await report(fresh_database, "--json"))["ab_tests"]
    assert (test["alias"], test["weights"]) == ("chat", WEIGHTS)
    assert (test["ended_by"], test["ended_on"]) == ("promoted", "arm-b")
    by_arm = {row["arm"]: row for row in test["arms"]}
    assert set(by_arm) == set(WEIGHTS)
    for arm, row in by_arm.items():  # the requests after the promotion are not the test's
        mine = [e.analysis for e in events if e.analysis.gateway_profile == arm]
        scores = [a.score for a in mine if a.score is not None]
        assert (row["weight"], row["requests"], row["errors"]) == (WEIGHTS[arm], during[arm], 0)
        assert row["share"] == round(during[arm] / sum(during.values()), 4)
        assert row["repairs"] == sum(1 for a in mine if a.repaired)
        assert row["analyses"] == len(mine)
        assert row["valid_first_time"] == round(sum(not a.repaired for a in mine) / len(mine), 4)
        assert row["score_mean"] == pytest.approx(sum(scores) / len(scores), abs=0.051)
        for q in (10, 50, 90):
            assert row[f"score_p{q}"] == pytest.approx(percentile(scores, q / 100), abs=0.051)
        assert row["latency_p50"] is not None
    table = await report(fresh_database)
    assert "A/B test of chat (promoted arm-b)" in table
    cells = {
        tuple(r[:4]): r[4] for r in csv.reader(io.StringIO(await report(fresh_database, "--csv")))
    }
    assert int(cells[("ab", "chat", "arm-a", "requests")]) == during["arm-a"]
