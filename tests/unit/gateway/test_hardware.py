"""The hardware-fit estimate: weights plus KV cache plus headroom, against the device."""

import pytest

from sift_gateway.hardware import GIB, HEADROOM, estimate_fit
from sift_gateway.profiles import Hardware

# Qwen2.5-7B-Instruct-like: 7.6 B parameters in bf16, 28 layers, 4 KV heads of 128, 32k context.
QWEN_7B = {
    "parameters_billion": 7.6,
    "layers": 28,
    "kv_heads": 4,
    "head_dim": 128,
    "context_tokens": 32_768,
}


def test_known_config_numbers() -> None:
    fit = estimate_fit(Hardware(**QWEN_7B))
    # K and V × 28 layers × 4 heads × 128 dims × 2 bytes = 57 344 bytes = 56 KiB per token.
    assert fit.kv_cache_per_token_kib == pytest.approx(56.0)
    assert fit.kv_cache_gib == pytest.approx(57_344 * 32_768 / GIB)  # 1.75 GiB
    assert fit.kv_cache_gib == pytest.approx(1.75)
    assert fit.weights_gib == pytest.approx(15.2e9 / GIB)  # ≈ 14.16 GiB
    assert fit.total_gib == pytest.approx((15.2e9 + 57_344 * 32_768) * (1 + HEADROOM) / GIB)
    assert fit.total_gib == pytest.approx(17.497, abs=0.001)
    assert fit.fits is None  # device size not given


def test_fits_against_the_device() -> None:
    assert estimate_fit(Hardware(**QWEN_7B, device_memory_gib=24)).fits is True
    assert estimate_fit(Hardware(**QWEN_7B, device_memory_gib=16)).fits is False


def test_concurrency_and_quantisation_scale_the_right_parts() -> None:
    base = estimate_fit(Hardware(**QWEN_7B))
    busy = estimate_fit(Hardware(**QWEN_7B, concurrent_sequences=4))
    int4 = estimate_fit(Hardware(**QWEN_7B, weight_bytes_per_parameter=0.5))
    assert busy.kv_cache_gib == pytest.approx(4 * base.kv_cache_gib)
    assert busy.weights_gib == base.weights_gib
    assert int4.weights_gib == pytest.approx(base.weights_gib / 4)
    assert int4.kv_cache_gib == base.kv_cache_gib


def test_as_dict_rounds_for_display() -> None:
    shown = estimate_fit(Hardware(**QWEN_7B, device_memory_gib=80)).as_dict()
    assert shown == {
        "weights_gib": 14.156,
        "kv_cache_per_token_kib": 56.0,
        "kv_cache_gib": 1.75,
        "total_gib": 17.497,
        "device_memory_gib": 80,
        "fits": True,
    }
