"""Before a switch: does the target profile fit what its engines report?

Two sources, each checked where it can be:
- the profile's own estimate (`hardware.py`: weights + KV cache of `context_tokens` ×
  `concurrent_sequences`, plus headroom) against its declared `device_memory_gib`;
- each replica's engine: `/v1/models` gives the `max_model_len` it serves, `/metrics`
  `vllm:cache_config_info` the KV cache it allocated, in tokens (`kv_cache_size_tokens`, or
  `num_gpu_blocks` × `block_size`). vLLM-CPU has no GPU memory: its KV cache lives in host
  memory (VLLM_CPU_KVCACHE_SPACE) and is reported the same way, so the same check applies.

Refused when the estimate exceeds the device, when an engine serves a shorter context than the
profile assumes, or when an engine's KV cache cannot hold one sequence of that context (vLLM's
own start-up rule). Fewer full-length sequences than `concurrent_sequences` is reported, not
refused: vLLM queues the rest. An engine that reports no cache info is not checked on it.
"""

import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from sift_gateway.hardware import GIB, estimate_fit
from sift_gateway.registry import ProfileRuntime

CACHE_INFO = "vllm:cache_config_info"
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class FitReport:
    numbers: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems


async def check_fit(session: aiohttp.ClientSession, runtime: ProfileRuntime) -> FitReport:
    report = FitReport()
    hardware = runtime.profile.hardware
    if hardware is None:
        report.numbers["estimate"] = None  # no `hardware:` section: nothing to estimate
    else:
        estimate = estimate_fit(hardware)
        report.numbers["estimate"] = estimate.as_dict()
        report.numbers["context_tokens"] = hardware.context_tokens
        report.numbers["concurrent_sequences"] = hardware.concurrent_sequences
        if estimate.fits is False:
            report.problems.append(
                f"estimated {estimate.total_gib:.2f} GiB (weights {estimate.weights_gib:.2f} + "
                f"KV cache {estimate.kv_cache_gib:.2f} + headroom) > device "
                f"{estimate.device_memory_gib} GiB"
            )
    engines = []
    for replica in runtime.replicas:
        engine = await _engine_numbers(session, runtime, replica.url)
        engines.append(engine)
        report.problems += engine_problems(runtime, engine)
    report.numbers["engines"] = engines
    return report


async def _engine_numbers(
    session: aiohttp.ClientSession, runtime: ProfileRuntime, url: str
) -> dict[str, Any]:
    numbers: dict[str, Any] = {"url": url, "max_model_len": None, "kv_cache_tokens": None}
    try:
        async with session.get(url + "/v1/models") as response:
            if response.status != 200:
                return {**numbers, "error": f"/v1/models answered {response.status}"}
            cards = orjson.loads(await response.read()).get("data", [])
        card = next((c for c in cards if c.get("id") == runtime.profile.served_model), None)
        if card is None:
            return {**numbers, "error": f"{runtime.profile.served_model!r} is not served there"}
        numbers["max_model_len"] = card.get("max_model_len")
        async with session.get(url + "/metrics") as response:
            text = await response.text() if response.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, AttributeError) as exc:
        return {**numbers, "error": f"{type(exc).__name__}: {exc}"}
    return {**numbers, **cache_info(text)}


def cache_info(metrics_text: str) -> dict[str, Any]:
    """The KV cache an engine allocated, from `vllm:cache_config_info`: in tokens, and in GiB
    where the engine says (`kv_cache_memory_bytes`; vLLM-CPU: VLLM_CPU_KVCACHE_SPACE)."""
    for line in metrics_text.splitlines():
        if not line.startswith(CACHE_INFO + "{"):
            continue
        labels = dict(_LABEL.findall(line))
        info: dict[str, Any] = {}
        if labels.get("kv_cache_memory_bytes", "").isdigit():
            info["kv_cache_memory_gib"] = round(int(labels["kv_cache_memory_bytes"]) / GIB, 3)
        blocks, size = labels.get("num_gpu_blocks", ""), labels.get("block_size", "")
        if labels.get("kv_cache_size_tokens", "").isdigit():
            info["kv_cache_tokens"] = int(labels["kv_cache_size_tokens"])
        elif blocks.isdigit() and size.isdigit():
            info["kv_cache_tokens"] = int(blocks) * int(size)
        return info
    return {}


def engine_problems(runtime: ProfileRuntime, engine: dict[str, Any]) -> list[str]:
    url = engine["url"]
    if "error" in engine:
        return [f"{url}: {engine['error']}"]
    hardware = runtime.profile.hardware
    if hardware is None:
        return []
    problems = []
    context, served = hardware.context_tokens, engine["max_model_len"]
    if isinstance(served, int) and served < context:
        problems.append(f"{url} serves {served} tokens of context; the profile assumes {context}")
    tokens = engine["kv_cache_tokens"]
    if tokens is not None:
        per_token = estimate_fit(hardware).kv_cache_per_token_kib * 1024
        engine["kv_cache_gib_at_estimate"] = round(tokens * per_token / GIB, 3)
        engine["full_length_sequences"] = tokens // context
        if tokens < context:
            problems.append(
                f"{url}: KV cache of {tokens} tokens cannot hold one {context}-token sequence"
            )
    return problems
