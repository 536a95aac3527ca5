"""Where `sift doctor` draws its lines (docs/doctor.md lists them; the alert rules use the same)."""

ERROR_RATE_FAIL = 0.05
"""A model profile whose requests over the last hour failed (HTTP 5xx) more than this often
fails: callers are getting errors, and retries only hide it for so long."""

LATENCY_WINDOW_S = 3600
"""The request-log window the error rate and p50/p95 latency are taken over."""

DISK_WARN = 0.85
"""Disk used above this warns: PostgreSQL, RabbitMQ and the logs need headroom to keep going."""

DISK_FAIL = 0.95
"""Disk used above this fails: RabbitMQ blocks publishers at its disk alarm, PostgreSQL stops."""

MEMORY_WARN = 0.90
"""Memory used above this warns: the next spike is an OOM kill."""

KV_CACHE_WARN = 0.90
"""A vLLM engine's KV cache fuller than this warns: new requests wait or get preempted."""

GPU_MEMORY_WARN = 0.95
"""GPU memory used above this warns. vLLM takes 90 % of the card at start-up by default
(`--gpu-memory-utilization 0.9`), so 90 % is a healthy engine; above 95 % something else is
on the card too, and the next allocation fails."""

GPU_TEMPERATURE_WARN_C = 85.0
"""A GPU hotter than this (degrees Celsius) warns: it throttles its clocks soon after."""
