"""Archiver: search filters beside each vector, digest idempotency.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

Written by hand. Filtered k-NN reads one table: the document's source, kind, language and
publication time are copied onto its embedding rows, so pgvector's iterative HNSW scan checks
the filter on the index's own heap rows and a selective filter can use a B-tree instead. A
digest keeps the id of the event that carried it, so a redelivered digest is stored once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TSTZ = sa.DateTime(timezone=True)
FILTER_COLUMNS = ("source", "kind", "language", "published_at")


def upgrade() -> None:
    op.add_column("embeddings", sa.Column("source", sa.Text(), nullable=True))
    op.add_column("embeddings", sa.Column("kind", sa.Text(), nullable=True))
    op.add_column("embeddings", sa.Column("language", sa.Text(), nullable=True))
    op.add_column("embeddings", sa.Column("published_at", TSTZ, nullable=True))
    for column in FILTER_COLUMNS:
        op.create_index(f"ix_embeddings_{column}", "embeddings", [column])
    op.add_column("entity_digests", sa.Column("event_id", sa.Text(), nullable=True))
    op.add_column("entity_digests", sa.Column("document_ids", JSONB(), nullable=True))
    op.create_unique_constraint("uq_entity_digests_event_id", "entity_digests", ["event_id"])


def downgrade() -> None:
    op.drop_constraint("uq_entity_digests_event_id", "entity_digests", type_="unique")
    op.drop_column("entity_digests", "document_ids")
    op.drop_column("entity_digests", "event_id")
    for column in FILTER_COLUMNS:
        op.drop_index(f"ix_embeddings_{column}", "embeddings")
        op.drop_column("embeddings", column)
