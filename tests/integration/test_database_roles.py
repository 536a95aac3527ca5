"""PostgreSQL group roles on a fresh, migrated database: each role does what its service does
and nothing more (checked with SET ROLE, so no login or password setup is needed), and
granting twice converges."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from sift_archiver.pool import init_connection
from sift_archiver.rows import batch_rows
from sift_archiver.writer import write_batch
from sift_common.skip import AnalysisStateRepository
from sift_common.store.migrate import upgrade
from sift_common.store.roles import ANALYZER, ARCHIVER, GATEWAY, READER, grant_roles
from sift_gateway.request_log import COLUMNS, LogRow
from tests.support.archiver import analyzed

pytestmark = pytest.mark.integration

DOCUMENT = (
    "INSERT INTO documents (id, content_hash, source, body, kind, collected_at) "
    "VALUES (md5('d') || md5('d'), md5('h') || md5('h'), 's', 'b', 'news', now())"
)
ANALYSIS_STATE = (
    "INSERT INTO analysis_state (work_key, last_attempt_at, fencing_token, attempts) "
    "VALUES ('k', now(), 1, 1) "
    "ON CONFLICT (work_key) DO UPDATE SET attempts = analysis_state.attempts + 1"
)
REQUEST_LOG = (
    "INSERT INTO gateway.request_logs (request_id, profile, model, status_code, latency_ms, "
    "created_at) VALUES ('r', 'chat', 'm', 200, 1.0, now())"
)
READ_DOCUMENTS = "SELECT count(*) FROM documents"
READ_REQUEST_LOGS = "SELECT count(*) FROM gateway.request_logs"
UPDATE_DOCUMENTS = "UPDATE documents SET title = 't'"
DELETE_DOCUMENTS = "DELETE FROM documents"
CREATE_TABLE = "CREATE TABLE public.intruder (x int)"

# role → (statements it may run, statements refused)
EXPECTED = {
    ARCHIVER: (
        [DOCUMENT, READ_DOCUMENTS, UPDATE_DOCUMENTS],
        [DELETE_DOCUMENTS, REQUEST_LOG, READ_REQUEST_LOGS, ANALYSIS_STATE, CREATE_TABLE],
    ),
    ANALYZER: (
        [READ_DOCUMENTS, ANALYSIS_STATE],
        [DOCUMENT, UPDATE_DOCUMENTS, REQUEST_LOG, CREATE_TABLE],
    ),
    GATEWAY: (
        [REQUEST_LOG, READ_REQUEST_LOGS],
        [READ_DOCUMENTS, DOCUMENT, ANALYSIS_STATE, CREATE_TABLE],
    ),
    READER: (
        [READ_DOCUMENTS],
        [DOCUMENT, UPDATE_DOCUMENTS, DELETE_DOCUMENTS, ANALYSIS_STATE, REQUEST_LOG, CREATE_TABLE],
    ),
}


@asynccontextmanager
async def owner_connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    dsn = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def owner(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    await upgrade(fresh_database)
    async with owner_connection(fresh_database) as connection:
        await grant_roles(connection)
        await grant_roles(connection)  # idempotent
        yield connection


async def runs(connection: asyncpg.Connection, role: str, statement: str) -> bool:
    """Whether `role` may run `statement` (rolled back either way)."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(f"SET LOCAL ROLE {role}")
        await connection.execute(statement)
    except asyncpg.InsufficientPrivilegeError:
        return False
    finally:
        await transaction.rollback()
    return True


@pytest.mark.parametrize("role", list(EXPECTED))
async def test_each_role_may_do_its_work_and_nothing_else(
    owner: asyncpg.Connection, role: str
) -> None:
    allowed, refused = EXPECTED[role]
    assert [s for s in allowed if not await runs(owner, role, s)] == []
    assert [s for s in refused if await runs(owner, role, s)] == []


async def test_login_users_join_their_group(owner: asyncpg.Connection) -> None:
    done = await grant_roles(owner, {READER: "a-reader-password"})
    assert "login sift_reader_login in sift_reader" in done
    assert await runs(owner, "sift_reader_login", READ_DOCUMENTS)
    assert not await runs(owner, "sift_reader_login", DOCUMENT)
    await grant_roles(owner, {READER: "another-password"})  # an existing login: updated


async def test_the_archivers_own_batch_write_runs_as_sift_archiver(
    owner: asyncpg.Connection,
) -> None:
    """The archiver's real writer (documents, analyses, entities, links, embeddings, all
    upserts) under the role alone."""
    await init_connection(owner)
    event = analyzed("Acme beats estimates", "Acme rose 4%.", entities=(("company", "Acme", 60.0),))
    rows = batch_rows([event], words=50, overlap=10)
    await owner.execute(f"SET ROLE {ARCHIVER}")
    try:
        result = await write_batch(owner, rows, "embed", [[0.1] * 384 for _ in rows.chunks])
        again = await write_batch(owner, rows, "embed", [[0.1] * 384 for _ in rows.chunks])
    finally:
        await owner.execute("RESET ROLE")
    assert result.rows["documents"] == again.rows["documents"] == 1
    assert result.duplicates == again.duplicates == 0


async def test_the_gateways_binary_copy_runs_as_sift_gateway(owner: asyncpg.Connection) -> None:
    row = LogRow("r1", "chat", "m", None, 200, 1, 2, 3.0, None, None, datetime.now(UTC))
    await owner.execute(f"SET ROLE {GATEWAY}")
    try:
        await owner.copy_records_to_table(
            "request_logs", schema_name="gateway", columns=COLUMNS, records=[row.as_record()]
        )
    finally:
        await owner.execute("RESET ROLE")
    assert await owner.fetchval("SELECT count(*) FROM gateway.request_logs") == 1


async def test_the_analyzers_state_repository_runs_as_sift_analyzer(fresh_database: str) -> None:
    await upgrade(fresh_database)
    async with owner_connection(fresh_database) as owner:
        await grant_roles(owner)
    engine = create_async_engine(
        fresh_database, connect_args={"server_settings": {"role": ANALYZER}}
    )
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT current_user")) == ANALYZER
        state = AnalysisStateRepository(async_sessionmaker(engine, expire_on_commit=False))
        await state.record_attempt("work-1", fencing_token=5)
        assert await state.record_success("work-1", 5, "ref")
        assert not await state.record_failure("work-1", 4, "an older holder")  # fenced out
        assert (await state.get("work-1")) is not None
    finally:
        await engine.dispose()
