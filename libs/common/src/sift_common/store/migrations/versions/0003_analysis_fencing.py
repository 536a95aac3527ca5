"""Archiver: the lease fencing token an analysis was written under.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Written by hand. `document.analyzed` carries the analyzer's lease fencing token; the archiver's
upsert keeps the analysis with the highest token, so a worker whose lease ran out mid-call
cannot overwrite its successor's result. Nullable: rows written before this revision, and
events from publishers that hold no lease, have none (and never overwrite a row that has one).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("analyses", sa.Column("fencing_token", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("analyses", "fencing_token")
