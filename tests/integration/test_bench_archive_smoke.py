"""`bench/archive.py` in a smoke size, so the benchmark keeps working: it checks the bench's
effects (documents, analyses and embeddings stored for every batch size, k-NN vectors loaded,
insert-ceiling rows written), never its speed; speed is judged by `make bench-archive`."""

from pathlib import Path

import pytest

from bench import archive
from tests.support.vllm import VllmServers

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.timeout(1200)]


async def test_the_archive_bench_stores_what_it_times(
    vllm_servers: VllmServers, database_url: str, tmp_path: Path
) -> None:
    args = archive.parse_args(
        ["--docs", "6", "--batch-sizes", "1,4", "--vectors", "600", "--queries", "12",
         "--ef-search", "40", "--insert-rows", "200", "--out", str(tmp_path / "archive.json")]
    )  # fmt: skip
    result = await archive.run(args, database_url, vllm_servers.embed_url)

    assert [row["batch_size"] for row in result["ingest"]] == [1, 4]
    for row in result["ingest"]:
        # The second batch size stores as much as the first: its texts are new to the store.
        assert row["fed"] == 6
        assert row["stored"]["documents"] == row["stored"]["analysed"] == 6
        assert row["stored"]["embedded"] == 6
        assert row["stored"]["embedding_rows"] >= 6
        assert row["stored_docs_per_s"] > 0
    knn = result["knn"]
    assert knn["vectors"] == 600
    assert knn["unfiltered"][0]["queries"] == 12
    assert knn["insert_with_hnsw_rows_per_s"] > 0


def test_a_store_that_kept_less_than_was_fed_invalidates_the_run() -> None:
    empty = {"documents": 0, "analysed": 0, "embedded": 0, "embedding_rows": 0}
    with pytest.raises(archive.BenchInvalid, match="fed 6 documents"):
        archive.check_stored("batch size 32", 6, empty)
    archive.check_stored("batch size 32", 6, {**empty, "documents": 6, "analysed": 6,
                                               "embedded": 6, "embedding_rows": 9})  # fmt: skip
