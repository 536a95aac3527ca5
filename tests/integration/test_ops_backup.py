"""`sift backup` / `sift restore` against a real PostgreSQL + pgvector store: documents and
vectors written from a ledger come back exactly after a restore, with the same k-NN answers;
retention keeps the newest N; refusals leave the data alone."""

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sift_common.ops.backup_pg import client_major, server_major
from sift_common.ops.backup_revision import head_revision
from sift_common.store import migrate
from tests.support.archiver_vectors import Corpus, bulk_load, corpus, doc_id
from tests.support.databases import new_database
from tests.support.ops_cli import connect, run_cli

pytestmark = pytest.mark.integration

DOCUMENTS = 120
QUERIES = 5
K = 10


@pytest.fixture
async def store(fresh_database: str) -> tuple[str, Corpus]:
    """A migrated store holding the ledger's documents, one vector each."""
    await migrate.upgrade(fresh_database)
    ledger = corpus(DOCUMENTS, seed=7)
    connection = await connect(fresh_database)
    try:
        await bulk_load(connection, ledger)
    finally:
        await connection.close()
    return fresh_database, ledger


async def _snapshot(url: str, queries: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Every document and vector as stored, and the k-NN answer to each query."""
    connection = await connect(url)
    try:
        documents = {
            row["id"]: (row["source"], row["body"], row["kind"])
            for row in await connection.fetch("SELECT id, source, body, kind FROM documents")
        }
        vectors = {
            row["document_id"]: row["embedding"].to_numpy().astype(np.float32).tobytes()
            for row in await connection.fetch("SELECT document_id, embedding FROM embeddings")
        }
        knn = [
            [
                row["document_id"]
                for row in await connection.fetch(
                    "SELECT document_id FROM embeddings ORDER BY embedding <=> $1 LIMIT $2",
                    query,
                    K,
                )
            ]
            for query in queries
        ]
        return {"documents": documents, "vectors": vectors, "knn": knn}
    finally:
        await connection.close()


def _ledger_view(ledger: Corpus) -> tuple[dict[str, Any], dict[str, bytes]]:
    documents = {
        doc_id(n): (ledger.sources[n], f"body {n}", ledger.kinds[n]) for n in range(DOCUMENTS)
    }
    vectors = {doc_id(n): ledger.vectors[n].tobytes() for n in range(DOCUMENTS)}
    return documents, vectors


async def _damage(url: str) -> None:
    """What a restore must undo: rows deleted, a vector changed, a document added."""
    connection = await connect(url)
    try:
        await connection.execute("DELETE FROM documents WHERE id <= $1", doc_id(29))
        await connection.execute(
            "UPDATE embeddings SET embedding = $1 WHERE document_id = $2",
            np.ones(384, dtype=np.float32) / np.sqrt(384),
            doc_id(50),
        )
        await connection.execute(
            "INSERT INTO documents (id, content_hash, source, body, collected_at) "
            "VALUES ($1, 'added', 'later', 'added after the backup', now())",
            "f" * 64,
        )
    finally:
        await connection.close()


async def test_backup_damage_restore_gives_back_every_row_and_vector(
    store: tuple[str, Corpus], tmp_path: Path
) -> None:
    url, ledger = store
    queries = corpus(QUERIES, seed=99).vectors
    before = await _snapshot(url, queries)
    documents, vectors = _ledger_view(ledger)
    assert (before["documents"], before["vectors"]) == (documents, vectors)

    backed = await run_cli("sift", url, "backup", "--dir", str(tmp_path))
    assert backed.code == 0, backed.err
    [dump] = list(tmp_path.iterdir())
    assert dump.name.startswith("sift-")
    assert dump.name.endswith(".dump")
    assert f"wrote {dump}" in backed.out

    await _damage(url)
    damaged = await _snapshot(url, queries)
    assert len(damaged["documents"]) == DOCUMENTS - 30 + 1
    assert damaged["vectors"][doc_id(50)] != vectors[doc_id(50)]

    restored = await run_cli("sift", url, "restore", str(dump), "--yes")
    assert restored.code == 0, restored.err
    assert "nothing to migrate" in restored.out
    after = await _snapshot(url, queries)
    assert (after["documents"], after["vectors"]) == (documents, vectors)
    assert after["knn"] == before["knn"]
    assert await migrate.current_revision(url) == head_revision()
    connection = await connect(url)
    try:
        index = await connection.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_embeddings_embedding_hnsw'"
        )
    finally:
        await connection.close()
    assert index is not None
    assert "hnsw" in index


async def _document_count(url: str) -> int:
    connection = await connect(url)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM documents")
        return count
    finally:
        await connection.close()


async def test_restore_refuses_without_yes_and_leaves_the_data(
    store: tuple[str, Corpus], tmp_path: Path
) -> None:
    url, _ledger = store
    assert (await run_cli("sift", url, "backup", "--dir", str(tmp_path))).code == 0
    [dump] = list(tmp_path.iterdir())
    await _damage(url)

    refused = await run_cli("sift", url, "restore", str(dump))
    assert refused.code == 1
    assert "--yes" in refused.err
    assert await _document_count(url) == DOCUMENTS - 30 + 1


async def test_restore_refuses_a_file_that_is_not_a_dump(
    store: tuple[str, Corpus], tmp_path: Path
) -> None:
    url, _ledger = store
    # A plain-SQL dump is a real pg_dump output, but not one pg_restore can read.
    not_a_dump = tmp_path / "sift-plain.sql"
    not_a_dump.write_text("DROP TABLE documents CASCADE;\n")

    refused = await run_cli("sift", url, "restore", str(not_a_dump), "--yes")
    assert refused.code == 1
    assert "not a pg_dump custom-format archive" in refused.err
    assert await _document_count(url) == DOCUMENTS


async def test_client_older_than_the_server_is_refused_by_name(
    fresh_database: str, tmp_path: Path
) -> None:
    """The machine's own pg_dump (when older than the server) named as too old, no dump."""
    system = shutil.which("pg_dump")
    if system is None or client_major(Path(system)) >= await server_major(fresh_database):
        pytest.skip("no PostgreSQL client older than the test server on PATH")
    refused = await run_cli(
        "sift",
        fresh_database,
        "backup",
        "--dir",
        str(tmp_path),
        SIFT_PG_BIN_DIR=str(Path(system).parent),
    )
    assert refused.code == 2
    assert "older than the server" in refused.err
    assert "SIFT_PG_BIN_DIR" in refused.err
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


async def test_an_older_dump_is_refused_over_a_newer_schema_and_restores_into_an_empty_one(
    fresh_database: str, database_url: str, tmp_path: Path
) -> None:
    """A dump taken at 0003: over the newest schema (tables the dump lacks) it is refused
    naming them, and nothing changes; into an empty database it restores at 0003 and the
    command names the migration to run."""
    await migrate.upgrade(fresh_database, "0003")
    assert (await run_cli("sift", fresh_database, "backup", "--dir", str(tmp_path))).code == 0
    [dump] = list(tmp_path.iterdir())
    await migrate.upgrade(fresh_database)
    assert head_revision() != "0003", "this test needs a migration after 0003"

    refused = await run_cli("sift", fresh_database, "restore", str(dump), "--yes")
    assert refused.code == 1
    assert "gateway.aliases" in refused.err
    assert "empty database" in refused.err
    assert await migrate.current_revision(fresh_database) == head_revision()

    async with new_database(database_url) as empty:
        restored = await run_cli("sift", empty, "restore", str(dump), "--yes")
        assert restored.code == 0, restored.err
        assert "run `sift-db upgrade`" in restored.out
        assert await migrate.current_revision(empty) == "0003"
