"""`python -m bench.pipeline --smoke`, so the pipeline bench keeps working: every part at a tiny
size on the fault matrix's test bed, checking the effects the bench checks before it reports a
rate (rows stored against its ledger, queues empty, LLM calls per document), never speed; speed
is judged by `make bench-pipeline`."""

from pathlib import Path

import pytest

from bench.pipeline.__main__ import parse_args, run
from tests.faults.conftest import needs_private_servers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]


async def test_the_pipeline_bench_checks_what_it_times(tmp_path: Path) -> None:
    needs_private_servers()
    args = parse_args(["--smoke", "--out", str(tmp_path / "pipeline.json")])
    result = await run(args, tmp_path / "bed")

    overhead = result["overhead"]
    effect = overhead["effect"]
    assert effect["stored"] == {"documents": 120, "analysed": 120, "embedded": 120,
                                "embedding_rows": 120}  # fmt: skip
    assert effect["chat_calls"] == effect["gateway"]["calls"] == 120
    assert effect["left_in_queues"] == {}
    assert overhead["store_insert_ceiling_rows_per_s"] > 0
    assert {"gateway", "collector", "analyzer", "archiver", "postgres", "rabbitmq"} <= set(
        overhead["processes"]
    )
    storm = result["storm"]
    assert storm["published"] == 3 * storm["unique_docs"]
    assert storm["llm_calls_at_fake_per_unique"] == storm["llm_calls_at_gateway_per_unique"] == 1.0
    assert storm["lost"] == storm["duplicate_rows"] == 0
    steps = result["scaling"]["steps"]
    assert [step["replicas"] for step in steps] == [1, 2]
    assert {"analyzer-2", "archiver-2"} <= set(steps[1]["processes"])
    assert "analyzer-2" not in steps[0]["processes"]
    for step in steps:
        assert step["effect"]["stored"]["documents"] == 60
