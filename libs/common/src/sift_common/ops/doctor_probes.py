"""`sift doctor`'s HTTP probes: the services' readiness, the gateway's /metrics and
/admin/upstreams, the vLLM engines' /metrics. Each returns a reading; none raises for a target
that is down (the reading carries the error instead).

The engines' URLs come from the gateway's profiles file (SIFT_GATEWAY_PROFILES, read here as
plain YAML: the gateway package is not imported into common), else from what the gateway's
/admin/upstreams lists.
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import yaml  # with sift-common[service]'s uvicorn[standard]
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from sift_common import envsubst
from sift_common.ops.doctor_checks import ReadinessReading
from sift_common.ops.doctor_checks_llm import BreakerReading, EngineReading
from sift_common.ops.doctor_config import ServiceTarget
from sift_common.service.readiness import ReadinessReport

BREAKER_METRIC = "sift_gateway_breaker_open"
RUNNING_METRIC = "vllm:num_requests_running"
WAITING_METRIC = "vllm:num_requests_waiting"
# vLLM renamed its KV-cache gauge (a fraction 0..1 despite the name); older engines have the other.
KV_CACHE_METRICS = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
MAX_ERROR_CHARS = 160
Upstreams = dict[str, list[dict[str, Any]]]


class ProfilesUnreadable(ValueError):
    """The profiles file named by SIFT_GATEWAY_PROFILES cannot be read as a profiles file."""


def why(error: BaseException) -> str:
    """An exception as one short line: its type, and its message when it has one."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:MAX_ERROR_CHARS] if text else type(error).__name__


def bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


async def read_readiness(client: httpx.AsyncClient, target: ServiceTarget) -> ReadinessReading:
    reading = ReadinessReading(target.service, target.variable, target.url)
    try:
        response = await client.get(f"{target.url}/health/ready")
    except httpx.HTTPError as exc:
        return replace(reading, error=why(exc))
    try:
        report = ReadinessReport.model_validate_json(response.content)
    except ValidationError:
        return replace(
            reading,
            status_code=response.status_code,
            error=f"HTTP {response.status_code}, not a readiness report",
        )
    return replace(reading, status_code=response.status_code, report=report)


async def read_breakers(
    client: httpx.AsyncClient, gateway_url: str, metrics_key: str | None
) -> BreakerReading:
    try:
        response = await client.get(f"{gateway_url}/metrics", headers=bearer(metrics_key))
    except httpx.HTTPError as exc:
        return BreakerReading(error=why(exc))
    if response.status_code in (401, 403):
        return BreakerReading(refused=True)
    if response.status_code != 200:
        return BreakerReading(error=f"HTTP {response.status_code}")
    try:
        samples = _samples(response.text, {BREAKER_METRIC})
    except ValueError as exc:
        return BreakerReading(error=f"/metrics is not Prometheus text: {why(exc)}")
    return BreakerReading(
        open_by_upstream={labels.get("upstream", "?"): value for _, labels, value in samples}
    )


async def read_upstreams(
    client: httpx.AsyncClient, gateway_url: str, admin_key: str | None
) -> Upstreams | str:
    """The gateway's `/admin/upstreams`, or why not (a string)."""
    try:
        response = await client.get(f"{gateway_url}/admin/upstreams", headers=bearer(admin_key))
    except httpx.HTTPError as exc:
        return why(exc)
    if response.status_code in (401, 403):
        return f"HTTP {response.status_code}: set SIFT_GATEWAY_ADMIN_KEY (a key with `admin`)"
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return "the answer is not JSON"
    return body if isinstance(body, dict) else f"unexpected answer: {type(body).__name__}"


def profile_engines(path: Path) -> list[tuple[str, str]]:
    """(profile, replica URL) for every replica in the profiles file, `${VAR}` expanded."""
    try:
        raw = yaml.safe_load(envsubst.expand_env(path.read_text()))
    except (OSError, yaml.YAMLError, envsubst.MissingVariableError) as exc:
        raise ProfilesUnreadable(f"SIFT_GATEWAY_PROFILES ({path}): {why(exc)}") from exc
    profiles = raw.get("profiles") if isinstance(raw, dict) else None
    if not isinstance(profiles, dict):
        raise ProfilesUnreadable(f"SIFT_GATEWAY_PROFILES ({path}): no `profiles` mapping")
    return [
        (str(name), str(url).rstrip("/"))
        for name, profile in profiles.items()
        if isinstance(profile, dict)
        for url in profile.get("replicas") or []
    ]


async def read_engine(
    client: httpx.AsyncClient, profile: str, url: str, gateway_view: Mapping[str, Any] | None
) -> EngineReading:
    reading = EngineReading(
        profile,
        url,
        gateway_healthy=None if gateway_view is None else bool(gateway_view.get("healthy")),
        gateway_error=None if gateway_view is None else gateway_view.get("last_error"),
    )
    try:
        response = await client.get(f"{url}/metrics")
        response.raise_for_status()
        samples = _samples(response.text, {RUNNING_METRIC, WAITING_METRIC, *KV_CACHE_METRICS})
    except (httpx.HTTPError, ValueError) as exc:  # ValueError: not Prometheus text
        return replace(reading, error=why(exc))
    return replace(
        reading,
        running=_total(samples, RUNNING_METRIC),
        waiting=_total(samples, WAITING_METRIC),
        kv_cache=_highest(samples, KV_CACHE_METRICS),
    )


Sample = tuple[str, dict[str, str], float]


def _samples(text: str, names: set[str]) -> list[Sample]:
    return [
        (sample.name, sample.labels, float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in names
    ]


def _total(samples: list[Sample], name: str) -> float | None:
    values = [value for sample, _, value in samples if sample == name]
    return sum(values) if values else None


def _highest(samples: list[Sample], names: Iterable[str]) -> float | None:
    wanted = set(names)
    values = [value for sample, _, value in samples if sample in wanted]
    return max(values) if values else None
