"""Does a model profile fit its device? Weights plus the KV cache of the configured context.

KV cache per token = 2 (K and V) × layers × kv_heads × head_dim × bytes per value; the whole
cache is that × context tokens × concurrent sequences. vLLM also needs activation and CUDA
graph room, so the estimate keeps a headroom margin before saying a profile fits.
"""

from dataclasses import dataclass

from sift_gateway.profiles import Hardware

GIB = 1024**3
HEADROOM = 0.10  # activations, CUDA graphs, fragmentation


@dataclass(frozen=True)
class HardwareFit:
    weights_gib: float
    kv_cache_per_token_kib: float
    kv_cache_gib: float
    total_gib: float
    device_memory_gib: float | None
    fits: bool | None  # None when the device size is unknown

    def as_dict(self) -> dict[str, float | bool | None]:
        return {
            "weights_gib": round(self.weights_gib, 3),
            "kv_cache_per_token_kib": round(self.kv_cache_per_token_kib, 3),
            "kv_cache_gib": round(self.kv_cache_gib, 3),
            "total_gib": round(self.total_gib, 3),
            "device_memory_gib": self.device_memory_gib,
            "fits": self.fits,
        }


def estimate_fit(hardware: Hardware) -> HardwareFit:
    weights = hardware.parameters_billion * 1e9 * hardware.weight_bytes_per_parameter
    per_token = (
        2 * hardware.layers * hardware.kv_heads * hardware.head_dim * hardware.kv_bytes_per_value
    )
    kv_cache = per_token * hardware.context_tokens * hardware.concurrent_sequences
    total = (weights + kv_cache) * (1 + HEADROOM)
    device = hardware.device_memory_gib
    return HardwareFit(
        weights_gib=weights / GIB,
        kv_cache_per_token_kib=per_token / 1024,
        kv_cache_gib=kv_cache / GIB,
        total_gib=total / GIB,
        device_memory_gib=device,
        fits=None if device is None else total / GIB <= device,
    )
