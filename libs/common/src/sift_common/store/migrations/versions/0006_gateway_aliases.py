"""Gateway: aliases and their switch history in the database, shared by every replica.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Written by hand. `gateway.aliases` holds where each alias ("chat", "embed") points, so every
gateway replica serves the same profile and a restart keeps a switch; `weights` is reserved
for the A/B split that comes next (NULL: the whole alias goes to `profile`).
`gateway.alias_switches` records every switch asked for: switched, refused (with the fit and
verification numbers) or rolled back. Replicas learn of a change through
`NOTIFY sift_gateway_aliases`, which needs no table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "aliases",
        sa.Column("alias", sa.Text(), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("weights", JSONB(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("alias", name="aliases_pkey"),
        schema="gateway",
    )
    op.create_table(
        "alias_switches",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("alias", sa.Text(), nullable=False),
        sa.Column("from_profile", sa.Text(), nullable=True),
        sa.Column("to_profile", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("numbers", JSONB(), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="alias_switches_pkey"),
        sa.CheckConstraint(
            "outcome IN ('switched', 'refused', 'rolled_back')",
            name="ck_alias_switches_known_outcome",
        ),
        schema="gateway",
    )
    op.create_index(
        "ix_alias_switches_alias_at", "alias_switches", ["alias", "at"], schema="gateway"
    )


def downgrade() -> None:
    op.drop_index("ix_alias_switches_alias_at", table_name="alias_switches", schema="gateway")
    op.drop_table("alias_switches", schema="gateway")
    op.drop_table("aliases", schema="gateway")
