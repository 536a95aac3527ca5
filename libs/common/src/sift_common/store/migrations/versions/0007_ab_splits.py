"""Gateway A/B splits: switch outcomes `split` and `promoted`; the profile behind an analysis.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Written by hand. `gateway.alias_switches.outcome` may also be `split` (an alias's traffic split
between profiles by weight, kept in `gateway.aliases.weights`) and `promoted` (the split ended
on one arm). `analyses.gateway_profile` is the gateway profile (the A/B arm) that answered, and
`analyses.repaired` whether the answer needed the one repair turn; both NULL on rows written
before this revision. `sift report` compares the arms with them.

The downgrade keeps what the older check can hold: a promotion is recorded as a switch, and a
split row, which it cannot express, is deleted.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0006 gave the check a name the naming convention then prefixed again; this revision names
# it as the model does (raw SQL: no convention applied).
CHECK_0006 = "ck_alias_switches_ck_alias_switches_known_outcome"
CHECK = "ck_alias_switches_known_outcome"


def _outcomes(drop: str, add: str, *names: str) -> None:
    known = ", ".join(f"'{name}'" for name in names)
    op.execute(
        f"ALTER TABLE gateway.alias_switches DROP CONSTRAINT {drop},"
        f" ADD CONSTRAINT {add} CHECK (outcome IN ({known}))"
    )


def upgrade() -> None:
    _outcomes(CHECK_0006, CHECK, "switched", "refused", "rolled_back", "split", "promoted")
    op.add_column("analyses", sa.Column("gateway_profile", sa.Text(), nullable=True))
    op.add_column("analyses", sa.Column("repaired", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("analyses", "repaired")
    op.drop_column("analyses", "gateway_profile")
    op.execute("DELETE FROM gateway.alias_switches WHERE outcome = 'split'")
    op.execute("UPDATE gateway.alias_switches SET outcome = 'switched' WHERE outcome = 'promoted'")
    _outcomes(CHECK, CHECK_0006, "switched", "refused", "rolled_back")
