"""The whole pipeline as processes, started the way `make demo` starts it (scripts/demo)."""

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

DATA = Path(__file__).resolve().parents[2] / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.vllm)


async def store_counts(database_url: str) -> dict[str, int]:
    """Rows in the store: documents, distinct content, analyses, documents with embeddings."""
    engine = create_async_engine(database_url)
    queries = {
        "documents": "SELECT count(*) FROM documents",
        "distinct_content": "SELECT count(DISTINCT content_hash) FROM documents",
        "analyses": "SELECT count(*) FROM analyses",
        "analysed_documents": "SELECT count(DISTINCT document_id) FROM analyses",
        "embedded_documents": "SELECT count(DISTINCT document_id) FROM embeddings",
    }
    try:
        async with engine.connect() as conn:
            return {k: int((await conn.execute(text(q))).scalar_one()) for k, q in queries.items()}
    finally:
        await engine.dispose()
