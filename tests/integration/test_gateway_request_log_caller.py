"""Request logs name their caller (FAKE upstreams, real PostgreSQL): revision 0004 adds
`gateway.request_logs.caller` (the API key's name) and `endpoint`, and the gateway writes them;
an open development gateway writes NULL."""

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sift_archiver.pool import asyncpg_dsn
from sift_common.store import migrate
from tests.support.gateway import (
    HI,
    StartFake,
    chat,
    chat_profile,
    client,
    embed_profile,
    logged_rows,
    logging_gateway,
    running_gateway,
)

pytestmark = pytest.mark.integration

ANALYZER_KEY = "k" * 40
BATCH_KEY = "q" * 40
KEYS: dict[str, Any] = {
    ANALYZER_KEY: {"name": "analyzer"},
    BATCH_KEY: {"name": "batch", "priority": "backfill"},
}


async def _columns(url: str) -> set[str]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'gateway' AND table_name = 'request_logs'"
        )
    finally:
        await connection.close()
    return {row["column_name"] for row in rows}


async def _logged(url: str, count: int) -> dict[str, asyncpg.Record]:
    """The request-log rows by request id, once `count` of them are written."""
    rows = await logged_rows(url, count, "request_id, caller, endpoint, status_code")
    return {row["request_id"]: row for row in rows}


async def test_revision_0004_adds_and_removes_caller_and_endpoint(fresh_database: str) -> None:
    await migrate.upgrade(fresh_database, "0003")
    assert not {"caller", "endpoint"} & await _columns(fresh_database)
    await migrate.upgrade(fresh_database, "0004")
    assert {"caller", "endpoint"} <= await _columns(fresh_database)
    await migrate.downgrade(fresh_database, "0003")
    assert not {"caller", "endpoint"} & await _columns(fresh_database)
    assert await migrate.current_revision(fresh_database) == "0003"


async def test_the_gateway_logs_the_key_name_as_caller(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    chat_fake, embed_fake = await fakes(), await fakes(model="fake-embed")
    profiles = {"main": chat_profile(chat_fake.url), "vectors": embed_profile(embed_fake.url)}
    async with (
        running_gateway(
            tmp_path,
            profiles,
            {"chat": "main", "embed": "vectors"},
            gateway_api_keys=KEYS,
            database_url=fresh_database,
            gateway_request_log=True,
        ) as gw,
        client(gw) as http,
    ):
        for key, request_id in ((ANALYZER_KEY, "by-analyzer"), (BATCH_KEY, "by-batch")):
            headers = {"Authorization": f"Bearer {key}", "x-request-id": request_id}
            assert (await chat(http, headers=headers)).status_code == 200
        embedded = await http.post(
            "/v1/embeddings",
            json={"model": "embed", "input": "hello"},
            headers={"Authorization": f"Bearer {ANALYZER_KEY}", "x-request-id": "embedded"},
        )
        assert embedded.status_code == 200
        missing = await http.post(
            "/v1/chat/completions",
            json={"model": "nope", "messages": HI},
            headers={"Authorization": f"Bearer {BATCH_KEY}", "x-request-id": "unknown-model"},
        )
        assert missing.status_code == 404
        refused = await chat(http, headers={"Authorization": "Bearer " + "x" * 40})
        assert refused.status_code == 401  # refused at the door: no request, no row
        rows = await _logged(fresh_database, 4)
    assert rows["by-analyzer"]["caller"] == "analyzer"
    assert rows["by-analyzer"]["endpoint"] == "chat"
    assert rows["by-batch"]["caller"] == "batch"
    assert (rows["embedded"]["caller"], rows["embedded"]["endpoint"]) == ("analyzer", "embeddings")
    assert (rows["unknown-model"]["caller"], rows["unknown-model"]["status_code"]) == ("batch", 404)


async def test_an_open_gateway_logs_no_caller(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    fake = await fakes()
    async with (
        logging_gateway(tmp_path, fake.url, fresh_database) as gw,
        client(gw) as http,
    ):
        assert (await chat(http, headers={"x-request-id": "open"})).status_code == 200
        rows = await _logged(fresh_database, 1)
    assert rows["open"]["caller"] is None
    assert rows["open"]["endpoint"] == "chat"
