"""Before a restore: does the target hold tables the dump does not?

`pg_restore --clean` drops and recreates what the dump contains; a table only the target has
(one a newer migration added) stays, and then `DROP SCHEMA` fails on it: a dump from an
older Sift cannot be restored over a newer schema. Said up front, naming the tables, so the
operator restores into an empty database instead. Partitions are left out on both sides:
dropping a partitioned table drops its partitions, whichever months they hold.
"""

import re

import asyncpg
from sqlalchemy.engine import make_url

from sift_common.ops.backup_pg import BackupError

# A table entry of `pg_restore --list`: "215; 1259 16390 TABLE public documents owner".
_TOC_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) ", re.MULTILINE)

_TARGET_TABLES = """
SELECT n.nspname AS schema, c.relname AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY($1::text[])"""


def dump_tables(toc: str) -> set[tuple[str, str]]:
    """(schema, table) of every table in a `pg_restore --list` listing."""
    return {(match[1], match[2]) for match in _TOC_TABLE.finditer(toc)}


async def tables_only_in_target(url: str, dumped: set[tuple[str, str]]) -> list[str]:
    """`schema.table` of the target's tables, in the dump's schemas, that the dump lacks."""
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        rows = await conn.fetch(_TARGET_TABLES, sorted({schema for schema, _ in dumped}))
    finally:
        await conn.close()
    return sorted(
        f"{row['schema']}.{row['name']}"
        for row in rows
        if (row["schema"], row["name"]) not in dumped
    )


def refuse_extra_tables(extra: list[str]) -> None:
    if extra:
        raise BackupError(
            f"the database has tables the dump does not ({', '.join(extra)}): its schema is "
            "newer than the dump's. Nothing was changed. Restore into an empty database "
            "(createdb, then SIFT_DATABASE_URL=<that database> sift restore DUMP --yes), "
            "then run `sift-db upgrade` there"
        )
