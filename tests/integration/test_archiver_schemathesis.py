"""The real `sift-archiver` process on a fresh database, real RabbitMQ, and the real gateway in
front of a FAKE embeddings upstream: schemathesis on its query API's OpenAPI (no 5xx, every
answer documented and conforming to its schema, the key checked). The collector's twin:
test_collector_schemathesis.py."""

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode

from scripts.processes import Child, free_port
from sift_common.messaging.topology import Topology
from tests.support.archiver import (
    analyzed,
    archiver_settings,
    fake_embedding_gateway,
    publish_all,
    running_archiver,
    table_counts,
    topology,
    wait_for,
)
from tests.support.fuzzing import Seen, fuzz_operations

pytestmark = pytest.mark.integration
__all__ = ["topology"]

KEY = "schemathesis-archiver-key"
ARCHIVER = Path(sys.executable).parent / "sift-archiver"
EXAMPLES = 40  # per operation and mode: the whole test stays well under 90 s on 2 cores


@asynccontextmanager
async def archiver_process(
    rabbit_url: str, namespace: str, database_url: str, gateway_url: str, log: Path
) -> AsyncIterator[str]:
    """Run `sift-archiver` (it migrates the empty database) until ready; its base URL."""
    port = free_port()
    environ = {
        **os.environ,
        "SIFT_RABBIT_URL": rabbit_url,
        "SIFT_NAMESPACE": namespace,
        "SIFT_DATABASE_URL": database_url,
        "SIFT_GATEWAY_URL": gateway_url,
        "SIFT_ARCHIVER_PORT": str(port),
        "SIFT_ARCHIVER_API_KEYS": f'{{"{KEY}": "schemathesis"}}',
        "SIFT_ARCHIVER_BATCH_WAIT_S": "0.2",
        "SIFT_ARCHIVER_REFRESH_EVERY_S": "0",
        # The `ignored_auth` check sends wrong keys on purpose: do not throttle this address.
        "SIFT_AUTH_FAILURES_PER_MINUTE": "100000",
    }
    base_url = f"http://127.0.0.1:{port}"
    archiver = Child("sift-archiver", [str(ARCHIVER)], log, environ).start()
    try:
        await asyncio.to_thread(archiver.wait_ready, f"{base_url}/health/ready", 90)
        yield base_url
    finally:
        archiver.stop(signal.SIGINT)  # SIGINT: stop at once, no drain grace


def load_schema(base_url: str) -> Any:
    """The archiver's OpenAPI as served: every answer is held to it (NUL bytes included, which
    the text parameters refuse with a 422 before PostgreSQL could)."""
    document = httpx.get(f"{base_url}/openapi.json", timeout=30).raise_for_status().json()
    schema = schemathesis.openapi.from_dict(document)
    schema.location = f"{base_url}/openapi.json"
    # Unknown query parameters are ignored, as FastAPI does everywhere: not invalid input.
    schema.config.generation.update(allow_extra_parameters=False)
    return schema


def run_schemathesis(base_url: str, mode: GenerationMode) -> tuple[Seen, dict[str, str]]:
    """Every operation of the query API, `EXAMPLES` generated cases each."""
    return fuzz_operations(
        load_schema(base_url),
        mode,
        examples=EXAMPLES,
        headers={"X-API-Key": KEY},
        # health, metrics and status take no input: nothing to make invalid
        takes_input=lambda operation: bool(operation.path_parameters or operation.query),
    )


@pytest.mark.timeout(240)
async def test_query_api_answers_only_documented_statuses_and_never_5xx(
    rabbit_url: str, namespace: str, fresh_database: str, tmp_path: Path
) -> None:
    events = [
        analyzed(f"Harbour note {n}", f"Cranes and ferries at the harbour, note {n}.",
                 entities=(("company", "Acme Shipping", 40.0 + n),))
        for n in range(4)
    ]  # fmt: skip
    async with (
        fake_embedding_gateway(tmp_path) as gateway,
        archiver_process(
            rabbit_url, namespace, fresh_database, gateway.url, tmp_path / "archiver.log"
        ) as base_url,
    ):
        # A few stored documents, so searches, rankings and score series return rows too.
        await publish_all(rabbit_url, Topology(namespace), events)

        async def stored() -> bool:
            return (await table_counts(fresh_database))["documents"] == len(events)

        await wait_for(stored, timeout=60)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            seen, failures = await asyncio.to_thread(run_schemathesis, base_url, mode)
            print(mode, dict(seen))
            assert not failures, "\n\n".join(f"{op}: {text}" for op, text in failures.items())
            # The run got past the door to real answers, and (negative) to refusals of input.
            expected = (200,) if mode.is_positive else (422,)
            search = "GET /v1/search"
            assert sum(seen[(search, status)] for status in expected) > 0, seen


async def test_a_nul_in_a_text_parameter_is_refused_with_422(
    rabbit_url: str, namespace: str, fresh_database: str, tmp_path: Path, topology: Any
) -> None:
    async with fake_embedding_gateway(tmp_path) as gateway:
        settings = archiver_settings(
            rabbit_url, namespace, fresh_database, gateway.url, archiver_refresh_every_s=0
        )
        async with running_archiver(settings) as running, running.http() as http:
            answers = [
                await http.get("/v1/rankings", params={"kind": "a\x00b"}),
                await http.get("/v1/search", params={"q": "x", "source": "\x00"}),
                await http.get("/v1/search", params={"q": "x", "language": "e\x00n"}),
                await http.get("/v1/entities/company:a%00b"),
            ]
    assert [a.status_code for a in answers] == [422, 422, 422, 422], [a.text for a in answers]
