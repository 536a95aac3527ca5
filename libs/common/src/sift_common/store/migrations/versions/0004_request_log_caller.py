"""Gateway: who made each request, and to which endpoint.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

Written by hand. `gateway.request_logs.caller` is the name of the API key the gateway let the
request in with (NULL on an open development gateway); `endpoint` is `chat` or `embeddings`.
Both nullable: rows written before this revision have neither. `sift report` groups by them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("request_logs", sa.Column("caller", sa.Text(), nullable=True), schema="gateway")
    op.add_column("request_logs", sa.Column("endpoint", sa.Text(), nullable=True), schema="gateway")


def downgrade() -> None:
    op.drop_column("request_logs", "endpoint", schema="gateway")
    op.drop_column("request_logs", "caller", schema="gateway")
