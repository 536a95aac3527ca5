"""Gateway: request logs partitioned by month, so retention drops whole months.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Written by hand. `gateway.request_logs` becomes `PARTITION BY RANGE (created_at)` with one
partition per UTC month, `request_logs_YYYY_MM`, from the month of the oldest row (the current
month when there is none) through two months ahead, and `request_logs_default` for any row
outside every range: the gateway must never fail to log. The key becomes a unique index on
`(id, created_at)` (a partitioned table's keys include the partition key), not a PRIMARY KEY
constraint: pg_restore --clean (`sift restore`) drops each partition's copy of a key
constraint, which PostgreSQL refuses, while a partition's copy of an index is left to DROP
TABLE. `id` stays an identity column and its sequence continues where the old one stopped.
The rows are copied (INSERT ... SELECT) under the migration's lock; the gateway's writes
wait, then resume, and its privileges on the table are carried over.
`sift_common.store.partitions` keeps the months ahead from then on. The downgrade is the
reverse: a plain table keyed on `id` with every row.

Frozen on purpose: nothing here imports the partitions module, which may change later.
"""

from collections.abc import Sequence
from datetime import date, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "gateway"
TABLE = "request_logs"
ASIDE = "request_logs_previous"
UNIQUE_KEY = "uq_request_logs_id_created_at"
MONTHS_AHEAD = 2
TSTZ = sa.DateTime(timezone=True)
COLUMNS = (
    "id, request_id, profile, model, upstream, status_code, prompt_tokens, completion_tokens, "
    "latency_ms, ttft_ms, error, created_at, caller, endpoint"
)


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
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
        sa.Column("created_at", TSTZ, server_default=sa.func.now(), nullable=False),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("endpoint", sa.Text(), nullable=True),
    ]


def _set_aside(key: str) -> list[tuple[str, str]]:
    """Rename the current table and the names it holds (its key's index `key`, the created_at
    index, the sequence) out of the way; the privileges granted on it, (privilege, grantee)."""
    grants = _grants(TABLE)
    op.execute(f"ALTER TABLE {SCHEMA}.{TABLE} RENAME TO {ASIDE}")
    op.execute(f"ALTER INDEX {SCHEMA}.{key} RENAME TO {ASIDE}_key")
    op.execute(f"ALTER INDEX {SCHEMA}.ix_{TABLE}_created_at RENAME TO ix_{ASIDE}_created_at")
    op.execute(f"ALTER SEQUENCE {SCHEMA}.{TABLE}_id_seq RENAME TO {ASIDE}_id_seq")
    return grants


def _grants(table: str) -> list[tuple[str, str]]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT a.privilege_type, "
            "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END "
            "FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a "
            "LEFT JOIN pg_roles r ON r.oid = a.grantee "
            "WHERE c.oid = CAST(:table AS regclass) AND a.grantee <> c.relowner"
        ),
        {"table": f"{SCHEMA}.{table}"},
    )
    return [(row[0], row[1]) for row in rows]


def _move_rows_and_drop_aside(grants: list[tuple[str, str]]) -> None:
    """Copy every row (ids kept), continue the identity where the old one stood, drop it."""
    op.execute(f"INSERT INTO {SCHEMA}.{TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {SCHEMA}.{ASIDE}")  # noqa: S608  (constant names)
    op.execute(
        f"SELECT setval(pg_get_serial_sequence('{SCHEMA}.{TABLE}', 'id'), last_value, is_called)"  # noqa: S608  (constant names)
        f" FROM {SCHEMA}.{ASIDE}_id_seq"
    )
    for privilege, grantee in grants:
        op.execute(f"GRANT {privilege} ON {SCHEMA}.{TABLE} TO {grantee}")
    op.drop_table(ASIDE, schema=SCHEMA)


def _months() -> list[date]:
    """The first day of each month from the oldest row's (UTC) through two months ahead."""
    oldest, now = (
        op.get_bind()
        .execute(
            sa.text(
                f"SELECT min(created_at) AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' "  # noqa: S608  (constant names)
                f"FROM {SCHEMA}.{ASIDE}"
            )
        )
        .one()
    )
    start: datetime = oldest or now
    month = date(start.year, start.month, 1)
    last = _add_months(date(now.year, now.month, 1), MONTHS_AHEAD)
    months = []
    while month <= last:
        months.append(month)
        month = _add_months(month, 1)
    return months


def _add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def upgrade() -> None:
    grants = _set_aside(f"{TABLE}_pkey")
    op.create_table(TABLE, *_columns(), schema=SCHEMA, postgresql_partition_by="RANGE (created_at)")
    op.create_index(UNIQUE_KEY, TABLE, ["id", "created_at"], unique=True, schema=SCHEMA)
    op.create_index(f"ix_{TABLE}_created_at", TABLE, ["created_at"], schema=SCHEMA)
    for month in _months():
        upper = _add_months(month, 1)
        op.execute(
            f"CREATE TABLE {SCHEMA}.{TABLE}_{month:%Y_%m} PARTITION OF {SCHEMA}.{TABLE} "
            f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
            f"TO ('{upper.isoformat()} 00:00:00+00')"
        )
    op.execute(f"CREATE TABLE {SCHEMA}.{TABLE}_default PARTITION OF {SCHEMA}.{TABLE} DEFAULT")
    _move_rows_and_drop_aside(grants)


def downgrade() -> None:
    grants = _set_aside(UNIQUE_KEY)
    op.create_table(
        TABLE,
        *_columns(),
        sa.PrimaryKeyConstraint("id", name=f"{TABLE}_pkey"),
        schema=SCHEMA,
    )
    op.create_index(f"ix_{TABLE}_created_at", TABLE, ["created_at"], schema=SCHEMA)
    # Dropping the partitioned parent drops every partition with it.
    _move_rows_and_drop_aside(grants)
