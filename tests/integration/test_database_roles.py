"""PostgreSQL group roles on a fresh, migrated database: each role does what its service does
and nothing more (checked with SET ROLE, so no login or password setup is needed), and
granting twice converges."""

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from sift_common.store.migrate import upgrade
from sift_common.store.roles import ANALYZER, ARCHIVER, GATEWAY, READER, grant_roles

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


@pytest.fixture
async def owner(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    await upgrade(fresh_database)
    dsn = make_url(fresh_database).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        await grant_roles(connection)
        await grant_roles(connection)  # idempotent
        yield connection
    finally:
        await connection.close()


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
