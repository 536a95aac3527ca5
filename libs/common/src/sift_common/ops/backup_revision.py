"""After a restore: is the restored schema the one this version of Sift expects?

A dump carries the Alembic revision it was taken at. An older one needs `sift-db upgrade`
before the services start; one this version does not know came from a newer Sift, and this
version's services must not run against it.
"""

from alembic.script import ScriptDirectory

from sift_common.store import migrate


def head_revision() -> str:
    """The newest migration this version of Sift ships."""
    head = ScriptDirectory(str(migrate.MIGRATIONS_DIR)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {migrate.MIGRATIONS_DIR}")
    return head


def known_revisions() -> set[str]:
    script = ScriptDirectory(str(migrate.MIGRATIONS_DIR))
    return {revision.revision for revision in script.walk_revisions()}


def advice_for(current: str | None, head: str, known: set[str]) -> str:
    """One line for the operator: what the restored revision means and what to run."""
    if current is None:
        return "the restored database has no Alembic revision: not a Sift store, or never migrated"
    if current == head:
        return f"schema at revision {current}, this version's head: nothing to migrate"
    if current in known:
        return (
            f"schema at revision {current}, older than this version's head {head}: "
            "run `sift-db upgrade` before starting the services"
        )
    return (
        f"schema at revision {current}, unknown to this version (head {head}): the dump "
        "comes from a newer Sift; run that version against it, not this one"
    )


async def revision_advice(url: str) -> str:
    """`advice_for` the database at `url`."""
    return advice_for(await migrate.current_revision(url), head_revision(), known_revisions())
