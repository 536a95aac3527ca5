"""Initial store: pgvector, documents, analyses, embeddings, entities, digests, state, gateway.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand. Constraint names follow `models.NAMING_CONVENTION`; the embedding size is
frozen here on purpose (a later size change is a new revision, not an edit of this one).
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMBEDDING_DIM = 384
TSTZ = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False)


def _created_at() -> sa.Column[datetime]:
    return sa.Column("created_at", TSTZ, server_default=sa.func.now(), nullable=False)


def _document_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["document_id"],
        ["documents.id"],
        name=f"fk_{table}_document_id_documents",
        ondelete="CASCADE",
    )


def _entity_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["entity_id"], ["entities.id"], name=f"fk_{table}_entity_id_entities", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE SCHEMA gateway")
    _create_documents()
    _create_analyses()
    _create_embeddings()
    _create_entities()
    _create_state()
    _create_request_logs()


def _create_documents() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), server_default="generic", nullable=False),
        sa.Column("published_at", TSTZ, nullable=True),
        sa.Column("collected_at", TSTZ, nullable=False),
        sa.Column("stored_at", TSTZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="documents_pkey"),
        sa.UniqueConstraint("content_hash", name="uq_documents_content_hash"),
        sa.CheckConstraint("id ~ '^[0-9a-f]{64}$'", name="ck_documents_id_is_sha256_hex"),
        sa.CheckConstraint("kind IN ('news', 'review', 'generic')", name="ck_documents_kind_known"),
    )


def _create_analyses() -> None:
    op.create_table(
        "analyses",
        _id(),
        sa.Column("document_id", sa.Text(), nullable=False),
        sa.Column("analysis_type", sa.Text(), nullable=False),
        sa.Column("prompt_version", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("result", JSONB(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="analyses_pkey"),
        _document_fk("analyses"),
        sa.UniqueConstraint(
            "document_id",
            "analysis_type",
            "prompt_version",
            name="uq_analyses_document_id_analysis_type_prompt_version",
        ),
    )


def _create_embeddings() -> None:
    op.create_table(
        "embeddings",
        _id(),
        sa.Column("document_id", sa.Text(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("dim", sa.Integer(), server_default=str(EMBEDDING_DIM), nullable=False),
        sa.Column("embedding", Vector(EMBEDDING_DIM), nullable=False),
        sa.PrimaryKeyConstraint("id", name="embeddings_pkey"),
        _document_fk("embeddings"),
        sa.UniqueConstraint(
            "document_id",
            "model",
            "chunk_index",
            name="uq_embeddings_document_id_model_chunk_index",
        ),
        sa.CheckConstraint(f"dim = {EMBEDDING_DIM}", name="ck_embeddings_dim_matches_column"),
        sa.CheckConstraint(
            "chunk_index >= 0 AND 0 <= char_start AND char_start <= char_end",
            name="ck_embeddings_span_valid",
        ),
    )
    op.create_index(
        "ix_embeddings_embedding_hnsw",
        "embeddings",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )


def _create_entities() -> None:
    op.create_table(
        "entities",
        _id(),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("normalized_name", sa.Text(), nullable=False),
        sa.Column("ticker", sa.Text(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="entities_pkey"),
        sa.UniqueConstraint("kind", "normalized_name", name="uq_entities_kind_normalized_name"),
    )
    op.create_table(
        "document_entities",
        sa.Column("document_id", sa.Text(), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("mention", JSONB(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("document_id", "entity_id", name="document_entities_pkey"),
        _document_fk("document_entities"),
        _entity_fk("document_entities"),
    )
    op.create_index("ix_document_entities_entity_id", "document_entities", ["entity_id"])
    op.create_table(
        "entity_digests",
        _id(),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("digest_type", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("details", JSONB(), nullable=False),
        sa.Column("document_count", sa.Integer(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("prompt_version", sa.Text(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="entity_digests_pkey"),
        _entity_fk("entity_digests"),
    )
    op.create_index(
        "ix_entity_digests_entity_id_digest_type_created_at",
        "entity_digests",
        ["entity_id", "digest_type", sa.text("created_at DESC")],
    )


def _create_state() -> None:
    op.create_table(
        "analysis_state",
        sa.Column("work_key", sa.Text(), nullable=False),
        sa.Column("last_attempt_at", TSTZ, nullable=False),
        sa.Column("last_success_at", TSTZ, nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result_ref", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("work_key", name="analysis_state_pkey"),
    )


def _create_request_logs() -> None:
    op.create_table(
        "request_logs",
        _id(),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("upstream", sa.Text(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="request_logs_pkey"),
        schema="gateway",
    )
    op.create_index("ix_request_logs_created_at", "request_logs", ["created_at"], schema="gateway")


def downgrade() -> None:
    op.drop_table("request_logs", schema="gateway")
    op.execute("DROP SCHEMA gateway")
    for table in (
        "analysis_state",
        "entity_digests",
        "document_entities",
        "entities",
        "embeddings",
        "analyses",
        "documents",
    ):
        op.drop_table(table)
    # The vector extension stays: it may predate this revision (IF NOT EXISTS above), and
    # dropping it needs more privilege than the rest of the schema.
