"""Seeding the archiver's tables for digest tests (the archiver is their only writer in
production; here the test plays its part with plain SQL through the store's models)."""

import hashlib
import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sift_common.contracts import EntityRef
from sift_common.store import migrate
from sift_common.store.engine import create_engine, session_factory
from sift_common.store.models import (
    EMBEDDING_DIM,
    Analysis,
    Document,
    DocumentEntity,
    Embedding,
    Entity,
)


def unit_vector(rng: random.Random, around: list[float] | None = None) -> list[float]:
    """A random unit vector, or one near `around` (same cluster)."""
    noise = [rng.gauss(0.0, 1.0) for _ in range(EMBEDDING_DIM)]
    raw = noise if around is None else [a + 0.15 * n for a, n in zip(around, noise, strict=True)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


async def seed_entity(engine: AsyncEngine, entity: EntityRef) -> int:
    async with session_factory(engine).begin() as session:
        row = Entity(
            kind=entity.kind,
            name=entity.name,
            normalized_name=entity.key.split(":", 1)[1],
            ticker=entity.ticker,
        )
        session.add(row)
        await session.flush()
        return row.id


async def seed_document(
    engine: AsyncEngine,
    entity_id: int,
    title: str,
    body: str,
    vector: list[float],
    *,
    score: float | None = 50.0,
    summary: str | None = None,
) -> str:
    """One stored, embedded document linked to the entity (with its score for it, and an
    analysis carrying `summary` when given); returns its id."""
    document_id = hashlib.sha256(f"seed:{title}".encode()).hexdigest()
    async with session_factory(engine).begin() as session:
        session.add(
            Document(
                id=document_id,
                content_hash=hashlib.sha256(body.encode()).hexdigest(),
                source="seed",
                title=title,
                body=body,
                kind="news",
                collected_at=datetime.now(UTC),
            )
        )
        await session.flush()
        session.add(DocumentEntity(document_id=document_id, entity_id=entity_id, score=score))
        if summary is not None:
            session.add(
                Analysis(
                    document_id=document_id,
                    analysis_type="news",
                    prompt_version="seed",
                    model="seed",
                    result={"summary": summary},
                    score=score,
                )
            )
        session.add(
            Embedding(
                document_id=document_id,
                chunk_index=0,
                char_start=0,
                char_end=len(body),
                model="seed",
                embedding=vector,
            )
        )
    return document_id


@pytest.fixture
async def store(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    """A fresh, migrated store (import the fixture into the test module)."""
    await migrate.upgrade(fresh_database)
    engine = create_engine(fresh_database)
    yield engine
    await engine.dispose()
