"""Alembic environment and revisions of the store (run through `sift_common.store.migrate`)."""
