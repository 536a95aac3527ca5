"""SQLAlchemy models of the store: documents, analyses, embeddings, entities, digests, state.

The schema itself is created by the hand-written Alembic migrations next to this module; these
models describe it for queries. `tests/integration/test_store.py` compares the two so they
cannot drift apart.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# all-MiniLM-L6-v2 produces 384-d vectors. Changing the model's size needs a new migration:
# the column type, the CHECK and the HNSW index all depend on it.
EMBEDDING_DIM = 384

GATEWAY_SCHEMA = "gateway"

# Deterministic constraint names, so migrations and EXPLAIN output can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "%(table_name)s_pkey",
}


class DocumentKind(StrEnum):
    NEWS = "news"
    REVIEW = "review"
    GENERIC = "generic"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        str: Text,
        int: Integer,
        float: Float,
    }


def _created_at() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


def _bigint_id() -> Mapped[int]:
    return mapped_column(BigInteger, Identity(), primary_key=True)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        CheckConstraint("id ~ '^[0-9a-f]{64}$'", name="id_is_sha256_hex"),
        CheckConstraint("kind IN ('news', 'review', 'generic')", name="kind_known"),
    )

    # The stable document id: sha256 hex of (source, external id or URL, normalised content).
    id: Mapped[str] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(unique=True)
    source: Mapped[str]
    external_id: Mapped[str | None]
    url: Mapped[str | None]
    title: Mapped[str | None]
    body: Mapped[str]
    language: Mapped[str | None]
    kind: Mapped[str] = mapped_column(server_default=DocumentKind.GENERIC.value)
    published_at: Mapped[datetime | None]
    collected_at: Mapped[datetime]
    stored_at: Mapped[datetime] = _created_at()


class Analysis(Base):
    __tablename__ = "analyses"
    __table_args__ = (UniqueConstraint("document_id", "analysis_type", "prompt_version"),)

    id: Mapped[int] = _bigint_id()
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    analysis_type: Mapped[str]
    prompt_version: Mapped[str]
    model: Mapped[str]
    result: Mapped[dict[str, Any]]
    score: Mapped[float | None]
    created_at: Mapped[datetime] = _created_at()
    # The analyzer's lease fencing token (revision 0003): the upsert keeps the highest.
    fencing_token: Mapped[int | None] = mapped_column(BigInteger)
    # Revision 0007: the gateway profile (the A/B arm) that answered, and whether the answer
    # needed its repair turn; NULL on rows written before.
    gateway_profile: Mapped[str | None]
    repaired: Mapped[bool | None]


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (
        UniqueConstraint("document_id", "model", "chunk_index"),
        CheckConstraint(f"dim = {EMBEDDING_DIM}", name="dim_matches_column"),
        CheckConstraint(
            "chunk_index >= 0 AND 0 <= char_start AND char_start <= char_end", name="span_valid"
        ),
        # Cosine HNSW; m/ef_construction are pgvector's defaults, spelled out so they are visible.
        # Search filters, copied from the document (revision 0002): B-trees for selective ones.
        Index("ix_embeddings_source", "source"),
        Index("ix_embeddings_kind", "kind"),
        Index("ix_embeddings_language", "language"),
        Index("ix_embeddings_published_at", "published_at"),
        Index(
            "ix_embeddings_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )

    id: Mapped[int] = _bigint_id()
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    chunk_index: Mapped[int]
    char_start: Mapped[int]
    char_end: Mapped[int]
    model: Mapped[str]
    dim: Mapped[int] = mapped_column(server_default=text(str(EMBEDDING_DIM)))
    embedding: Mapped[list[float]] = mapped_column(Vector(EMBEDDING_DIM))
    source: Mapped[str | None]
    kind: Mapped[str | None]
    language: Mapped[str | None]
    published_at: Mapped[datetime | None]


class Entity(Base):
    __tablename__ = "entities"
    __table_args__ = (UniqueConstraint("kind", "normalized_name"),)

    id: Mapped[int] = _bigint_id()
    kind: Mapped[str]
    name: Mapped[str]
    normalized_name: Mapped[str]
    ticker: Mapped[str | None]
    created_at: Mapped[datetime] = _created_at()


class DocumentEntity(Base):
    __tablename__ = "document_entities"
    # The PK serves document → entities; digests go entity → documents, hence the index.
    __table_args__ = (Index("ix_document_entities_entity_id", "entity_id"),)

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    entity_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("entities.id", ondelete="CASCADE"), primary_key=True
    )
    mention: Mapped[dict[str, Any] | None]
    score: Mapped[float | None]


class EntityDigest(Base):
    """One row per digest run: history is kept, the latest is found through the index."""

    __tablename__ = "entity_digests"
    __table_args__ = (
        Index(
            "ix_entity_digests_entity_id_digest_type_created_at",
            "entity_id",
            "digest_type",
            text("created_at DESC"),
        ),
    )

    id: Mapped[int] = _bigint_id()
    entity_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("entities.id", ondelete="CASCADE")
    )
    digest_type: Mapped[str]
    summary: Mapped[str]
    score: Mapped[float | None]
    details: Mapped[dict[str, Any]]
    document_count: Mapped[int]
    model: Mapped[str]
    prompt_version: Mapped[str]
    created_at: Mapped[datetime] = _created_at()
    # The EntityDigested event's id (revision 0002): a redelivered digest is stored once.
    event_id: Mapped[str | None] = mapped_column(unique=True)
    document_ids: Mapped[list[str] | None] = mapped_column(JSONB)


class AnalysisState(Base):
    """Skip-interval and fencing state per work key; read by primary key only."""

    __tablename__ = "analysis_state"

    work_key: Mapped[str] = mapped_column(primary_key=True)
    last_attempt_at: Mapped[datetime]
    last_success_at: Mapped[datetime | None]
    fencing_token: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    last_error: Mapped[str | None]
    result_ref: Mapped[str | None]


class RequestLog(Base):
    """One row per LLM request the gateway served, in the gateway's own schema.

    Partitioned by month on `created_at` since revision 0005 (`store.partitions`). Its key is
    a unique index on `(id, created_at)`, not a PRIMARY KEY constraint (the migration says
    why); the mapper treats the pair as the primary key.
    """

    __tablename__ = "request_logs"
    __table_args__ = (
        Index("uq_request_logs_id_created_at", "id", "created_at", unique=True),
        Index("ix_request_logs_created_at", "created_at"),
        {"schema": GATEWAY_SCHEMA},
    )
    __mapper_args__: Any = {"primary_key": ["id", "created_at"]}  # noqa: RUF012  (read once)

    id: Mapped[int] = mapped_column(BigInteger, Identity())
    request_id: Mapped[str]
    profile: Mapped[str]
    model: Mapped[str]
    # Unknown when a request is refused before an upstream is chosen or answers.
    upstream: Mapped[str | None]
    status_code: Mapped[int]
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    latency_ms: Mapped[float]
    ttft_ms: Mapped[float | None]
    error: Mapped[str | None]
    created_at: Mapped[datetime] = _created_at()
    # Revision 0004: the API key's name (None on an open development gateway, and on rows
    # written before it) and the endpoint (chat, embeddings).
    caller: Mapped[str | None]
    endpoint: Mapped[str | None]


class Alias(Base):
    """Where a gateway alias points, shared by every gateway replica (revision 0006).

    `weights` is an A/B split, `{"profile": percent}`, and `profile` then its heaviest arm;
    NULL sends the whole alias to `profile`.
    """

    __tablename__ = "aliases"
    __table_args__ = ({"schema": GATEWAY_SCHEMA},)

    alias: Mapped[str] = mapped_column(primary_key=True)
    profile: Mapped[str]
    weights: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_by: Mapped[str | None]


class AliasSwitch(Base):
    """One switch asked of the gateway and how it ended: switched, refused or rolled_back; an
    A/B split (split) and its end (promoted), revision 0007."""

    __tablename__ = "alias_switches"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('switched', 'refused', 'rolled_back', 'split', 'promoted')",
            name="known_outcome",
        ),
        Index("ix_alias_switches_alias_at", "alias", "at"),
        {"schema": GATEWAY_SCHEMA},
    )

    id: Mapped[int] = _bigint_id()
    alias: Mapped[str]
    from_profile: Mapped[str | None]
    to_profile: Mapped[str]
    outcome: Mapped[str]
    reason: Mapped[str | None]
    numbers: Mapped[dict[str, Any] | None]
    requested_by: Mapped[str | None]
    at: Mapped[datetime] = mapped_column(server_default=func.now())
