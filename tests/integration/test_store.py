"""The store against a real PostgreSQL + pgvector: migrations, HNSW k-NN, constraints, state.

Every test gets its own freshly created database (`fresh_database`).
"""

import asyncio
import hashlib
import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pgvector.asyncpg import register_vector
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, func, pool, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sift_common.skip import AnalysisStateRepository, autocommit_sessions, should_skip
from sift_common.store import migrate, partitions
from sift_common.store.engine import create_engine, session_factory
from sift_common.store.models import (
    EMBEDDING_DIM,
    Analysis,
    Base,
    Document,
    Embedding,
)

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def migrated(fresh_database: str) -> str:
    await migrate.upgrade(fresh_database)
    return fresh_database


@pytest.fixture
async def engine(migrated: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated, pool_size=10)
    yield engine
    await engine.dispose()


def _doc_id(n: int) -> str:
    return hashlib.sha256(f"doc-{n}".encode()).hexdigest()


def _document(n: int, content_hash: str | None = None) -> Document:
    return Document(
        id=_doc_id(n),
        content_hash=content_hash or hashlib.sha256(f"body-{n}".encode()).hexdigest(),
        source="test",
        body=f"body {n}",
        kind="news",
        collected_at=T0,
    )


def _unit_vector(rng: random.Random) -> list[float]:
    v = [rng.gauss(0.0, 1.0) for _ in range(EMBEDDING_DIM)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


async def _relations(engine: AsyncEngine) -> tuple[set[str], set[str]]:
    async with engine.connect() as conn:
        tables = await conn.scalars(
            text(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema IN ('public', 'gateway')"
            )
        )
        schemas = await conn.scalars(text("SELECT nspname FROM pg_namespace"))
        return set(tables), set(schemas)


async def test_migrations_up_down_up(fresh_database: str) -> None:
    engine = create_async_engine(fresh_database, poolclass=pool.NullPool)
    expected = {
        "public.documents",
        "public.analyses",
        "public.embeddings",
        "public.entities",
        "public.document_entities",
        "public.entity_digests",
        "public.analysis_state",
        "gateway.request_logs",
    }
    assert await migrate.current_revision(fresh_database) is None

    await migrate.upgrade(fresh_database)
    tables, schemas = await _relations(engine)
    assert expected <= tables
    assert "gateway" in schemas
    assert await migrate.current_revision(fresh_database) == "0007"

    await migrate.downgrade(fresh_database)
    tables, schemas = await _relations(engine)
    assert tables == {"public.alembic_version"}
    assert "gateway" not in schemas
    assert await migrate.current_revision(fresh_database) is None

    await migrate.upgrade(fresh_database)
    tables, _ = await _relations(engine)
    assert expected <= tables
    await engine.dispose()


async def test_models_match_the_migrations(engine: AsyncEngine) -> None:
    def diff(conn: Connection) -> list[object]:
        # The request logs' monthly partitions are left out as env.py leaves them out.
        opts = {"include_schemas": True, "include_name": partitions.include_name}
        context = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        # Autogenerate compares neither index options nor CHECKs: read those back directly.
        hnsw = await conn.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_embeddings_embedding_hnsw'")
        )
        assert "USING hnsw (embedding vector_cosine_ops)" in hnsw
        assert "m='16'" in hnsw
        assert "ef_construction='64'" in hnsw


async def _bulk_load(url: str, vectors: list[list[float]]) -> None:
    """Documents and embeddings through asyncpg's binary COPY, as a bulk writer would."""
    loader = create_async_engine(url, poolclass=pool.NullPool)
    async with loader.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        # The binary vector codec stays on this unpooled connection only.
        await register_vector(raw)
        await raw.copy_records_to_table(
            "documents",
            columns=["id", "content_hash", "source", "body", "kind", "collected_at"],
            records=[
                (_doc_id(n), f"h{n}", "test", f"b{n}", "news", T0) for n in range(len(vectors))
            ],
        )
        await raw.copy_records_to_table(
            "embeddings",
            columns=[
                "document_id",
                "chunk_index",
                "char_start",
                "char_end",
                "model",
                "dim",
                "embedding",
            ],
            records=[
                (_doc_id(n), 0, 0, 10, "minilm", EMBEDDING_DIM, v) for n, v in enumerate(vectors)
            ],
        )
        await raw.execute("ANALYZE documents; ANALYZE embeddings")
    await loader.dispose()


async def test_knn_query_uses_the_hnsw_index(migrated: str, engine: AsyncEngine) -> None:
    rng = random.Random(384)
    vectors = [_unit_vector(rng) for _ in range(2000)]
    await _bulk_load(migrated, vectors)
    explain = text(
        "EXPLAIN SELECT document_id FROM embeddings ORDER BY embedding <=> :q LIMIT 10"
    ).bindparams(bindparam("q", type_=Vector(EMBEDDING_DIM)))
    knn = (
        select(Embedding.document_id)
        .order_by(Embedding.embedding.cosine_distance(vectors[0]))
        .limit(10)
    )
    async with engine.connect() as conn:
        plan = "\n".join(await conn.scalars(explain, {"q": vectors[0]}))
        assert "Index Scan using ix_embeddings_embedding_hnsw" in plan, plan

        await conn.execute(text("SET hnsw.ef_search = 100"))
        for n in (0, 517, 1999):
            query = knn.order_by(None).order_by(Embedding.embedding.cosine_distance(vectors[n]))
            nearest = list(await conn.scalars(query))
            assert len(nearest) == 10
            assert nearest[0] == _doc_id(n)


async def test_document_content_hash_is_unique(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        session.add(_document(1, content_hash="same"))
    with pytest.raises(IntegrityError, match="uq_documents_content_hash"):
        async with sessions.begin() as session:
            session.add(_document(2, content_hash="same"))

    # The idempotent write path: a duplicate becomes a no-op, one row stays.
    row = {"id": _doc_id(3), "content_hash": "same", "source": "t", "body": "b", "collected_at": T0}
    upsert = insert(Document).values(row).on_conflict_do_nothing(index_elements=["content_hash"])
    async with sessions.begin() as session:
        await session.execute(upsert)
        await session.execute(upsert)
        count = await session.scalar(select(func.count()).select_from(Document))
    assert count == 1


async def test_analysis_is_unique_per_document_type_and_prompt(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)

    def analysis(prompt_version: str) -> Analysis:
        return Analysis(
            document_id=_doc_id(1),
            analysis_type="sentiment",
            prompt_version=prompt_version,
            model="qwen",
            result={"score": 0.5},
        )

    async with sessions.begin() as session:
        session.add(_document(1))
        await session.flush()
        session.add_all([analysis("v1"), analysis("v2")])
    with pytest.raises(IntegrityError, match="uq_analyses_document_id_analysis_type_prompt"):
        async with sessions.begin() as session:
            session.add(analysis("v1"))

    # Deleting the document takes its analyses with it.
    async with sessions.begin() as session:
        await session.delete(await session.get(Document, _doc_id(1)))
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Analysis)) == 0


async def test_embedding_dimension_is_enforced(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        session.add(_document(1))
    wrong = Embedding(
        document_id=_doc_id(1),
        chunk_index=0,
        char_start=0,
        char_end=5,
        model="m",
        embedding=[0.1] * (EMBEDDING_DIM - 1),
    )
    with pytest.raises(DBAPIError, match="expected 384 dimensions"):
        async with sessions.begin() as session:
            session.add(wrong)


async def test_stale_fencing_token_cannot_overwrite(engine: AsyncEngine) -> None:
    repo = AnalysisStateRepository(autocommit_sessions(engine), clock=lambda: T0)
    await repo.record_attempt("k", 5)
    assert await repo.record_success("k", 5, "analysis:1") is True

    assert await repo.record_success("k", 4, "analysis:stale") is False
    assert await repo.record_failure("k", 4, "stale worker failed") is False
    state = await repo.get("k")
    assert state is not None
    assert (state.fencing_token, state.result_ref, state.last_error) == (5, "analysis:1", None)

    # An older holder's attempt never lowers the stored token.
    await repo.record_attempt("k", 3)
    state = await repo.get("k")
    assert state is not None
    assert (state.fencing_token, state.attempts) == (5, 2)

    assert await repo.record_failure("k", 6, "timeout") is True
    state = await repo.get("k")
    assert state is not None
    assert (state.fencing_token, state.result_ref, state.last_error) == (6, "analysis:1", "timeout")


async def test_concurrent_fenced_writes_keep_the_newest(engine: AsyncEngine) -> None:
    repo = AnalysisStateRepository(autocommit_sessions(engine))
    tokens = list(range(1, 21))
    random.Random(7).shuffle(tokens)
    written = await asyncio.gather(*(repo.record_success("k", t, f"r{t}") for t in tokens))
    state = await repo.get("k")
    assert state is not None
    assert (state.fencing_token, state.result_ref) == (20, "r20")
    assert any(written)
    assert await repo.get("missing") is None


async def test_state_lookup_is_a_primary_key_index_scan(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO analysis_state (work_key, last_attempt_at) "
                "SELECT 'doc:' || n, now() FROM generate_series(1, 5000) AS n"
            )
        )
        await conn.execute(text("ANALYZE analysis_state"))
        # The statement `AnalysisStateRepository.get` (Session.get) sends.
        lookup = text("EXPLAIN SELECT * FROM analysis_state WHERE work_key = :key")
        plan = "\n".join(await conn.scalars(lookup, {"key": "doc:4242"}))
    assert "Index Scan using analysis_state_pkey" in plan, plan


async def test_should_skip_with_stored_state(engine: AsyncEngine) -> None:
    now = T0
    repo = AnalysisStateRepository(autocommit_sessions(engine), clock=lambda: now)
    interval = timedelta(hours=1)

    assert should_skip(await repo.get("digest:acme"), interval, now) is False
    await repo.record_attempt("digest:acme", 1)
    assert should_skip(await repo.get("digest:acme"), interval, now) is False
    assert await repo.record_success("digest:acme", 1, "digest:9")

    now = T0 + timedelta(minutes=59)
    state = await repo.get("digest:acme")
    assert should_skip(state, interval, now) is True
    assert state is not None
    assert state.result_ref == "digest:9"  # what a skipping caller re-uses

    # A failed refresh keeps the last good result and its age.
    assert await repo.record_failure("digest:acme", 2, "gateway 503")
    assert should_skip(await repo.get("digest:acme"), interval, now) is True

    now = T0 + timedelta(hours=1)
    assert should_skip(await repo.get("digest:acme"), interval, now) is False
