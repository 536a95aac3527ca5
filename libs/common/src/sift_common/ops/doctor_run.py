"""`sift doctor`'s probes run at once, each bounded by its own timeout, their readings judged.

A probe that cannot reach its target comes back as a finding naming the variable that points at
it. One that fails in a way nobody foresaw is reported too (`fail`, with the exception), so one
broken check never hides the others' findings.
"""

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from sqlalchemy.exc import SQLAlchemyError

from sift_common.messaging.topology import Topology
from sift_common.ops import doctor_probes as probes
from sift_common.ops.doctor_broker import read_broker
from sift_common.ops.doctor_checks import judge_dlq, judge_queue, judge_readiness
from sift_common.ops.doctor_checks_host import judge_disk, judge_gpu, judge_memory
from sift_common.ops.doctor_checks_llm import (
    PROFILES_VARIABLE,
    judge_breakers,
    judge_engine,
    judge_request_logs,
    skipped,
    unreachable_database,
)
from sift_common.ops.doctor_config import (
    BROKER_TIMEOUT_S,
    DATABASE_TIMEOUT_S,
    HTTP_TIMEOUT_S,
    DoctorConfig,
)
from sift_common.ops.doctor_host import memory_used_share, read_disk, read_gpus
from sift_common.ops.doctor_model import Area, Finding
from sift_common.ops.doctor_requests import read_request_stats
from sift_common.ops.doctor_thresholds import LATENCY_WINDOW_S
from sift_common.store.embedded import DEFAULT_DATA_DIR

WINDOW = "1h"  # LATENCY_WINDOW_S, as `sift report --since` spells it
Findings = list[Finding]


async def run_checks(config: DoctorConfig, now: datetime) -> Findings:
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        groups = await asyncio.gather(
            _guarded("services", _services(client, config)),
            _guarded("queues", _queues(config, now)),
            _guarded("engines", _engines(client, config)),
            _guarded("breakers", _breakers(client, config)),
            _guarded("requests", _requests_and_disk(config)),
            _guarded("host", _gpus()),
        )
    findings = [finding for group in groups for finding in group]
    return [*findings, judge_memory(memory_used_share())]


async def _guarded(area: Area, probe: Awaitable[Findings]) -> Findings:
    try:
        return await probe
    except Exception as exc:  # reported as a finding: one broken probe must not hide the rest
        return [
            Finding(
                area=area,
                name="doctor",
                status="fail",
                what=f"the {area} probe failed: {probes.why(exc)}",
                fix="sift doctor --json (and report this as a bug)",
            )
        ]


async def _services(client: httpx.AsyncClient, config: DoctorConfig) -> Findings:
    readings = await asyncio.gather(*(probes.read_readiness(client, t) for t in config.services))
    return [judge_readiness(reading) for reading in readings]


async def _queues(config: DoctorConfig, now: datetime) -> Findings:
    topology = Topology(config.namespace)
    try:
        queues, dlqs = await read_broker(config.rabbit_url, topology, now, BROKER_TIMEOUT_S)
    except (AMQPError, ChannelInvalidStateError, OSError, TimeoutError) as exc:
        return [
            Finding(
                area="queues",
                name="broker",
                status="fail",
                what=f"cannot read the queues at {_where(config.rabbit_url)} "
                f"({probes.why(exc)}); is SIFT_RABBIT_URL right?",
                fix="rabbitmq-diagnostics -q status; rabbitmqctl list_queues "
                "name messages consumers",
            )
        ]
    findings = [judge_queue(reading) for reading in queues]
    return findings + [f for reading in dlqs if (f := judge_dlq(reading, now)) is not None]


async def _engines(client: httpx.AsyncClient, config: DoctorConfig) -> Findings:
    upstreams = await probes.read_upstreams(client, config.gateway_url, config.admin_key)
    findings: Findings = []
    views: dict[str, dict[str, Any]] = {}
    if isinstance(upstreams, str):
        findings.append(
            skipped(
                "engines",
                "gateway view",
                f"{config.gateway_url}/admin/upstreams not read ({upstreams})",
            )
        )
    else:
        views = {str(r.get("url", "")).rstrip("/"): r for rs in upstreams.values() for r in rs}
    try:
        engines = _engine_urls(config.profiles_path, upstreams)
    except probes.ProfilesUnreadable as exc:
        return [
            *findings,
            Finding(
                area="engines",
                name="profiles",
                status="warn",
                what=str(exc),
                fix=f"check {PROFILES_VARIABLE}",
            ),
        ]
    if not engines:
        return [
            *findings,
            skipped(
                "engines",
                "vLLM",
                f"no engine URLs: set {PROFILES_VARIABLE} or SIFT_GATEWAY_ADMIN_KEY",
            ),
        ]
    readings = await asyncio.gather(
        *(probes.read_engine(client, profile, url, views.get(url)) for profile, url in engines)
    )
    return [*findings, *(judge_engine(reading) for reading in readings)]


def _engine_urls(
    profiles_path: Path | None, upstreams: probes.Upstreams | str
) -> list[tuple[str, str]]:
    if profiles_path is not None:
        return probes.profile_engines(profiles_path)
    if isinstance(upstreams, str):
        return []
    return [(p, str(r.get("url", "")).rstrip("/")) for p, rs in upstreams.items() for r in rs]


async def _breakers(client: httpx.AsyncClient, config: DoctorConfig) -> Findings:
    reading = await probes.read_breakers(client, config.gateway_url, config.metrics_key)
    return judge_breakers(reading, config.gateway_url)


async def _requests_and_disk(config: DoctorConfig) -> Findings:
    data_dir: Path | None = None
    if config.database_url is None:
        findings = [
            skipped(
                "requests",
                "gateway.request_logs",
                "SIFT_DATABASE_URL is not set: the request logs are not read",
            )
        ]
        data_dir = DEFAULT_DATA_DIR if DEFAULT_DATA_DIR.exists() else None
    else:
        try:
            stats, data_dir = await read_request_stats(
                config.database_url, LATENCY_WINDOW_S, DATABASE_TIMEOUT_S
            )
            findings = judge_request_logs(stats, WINDOW)
        except (SQLAlchemyError, asyncpg.PostgresError, OSError, TimeoutError) as exc:
            findings = [unreachable_database(probes.why(exc))]
    disk = (
        read_disk(data_dir, "the database's data directory")
        if data_dir is not None
        else read_disk(Path.cwd(), "the current directory (the database's is not known here)")
    )
    return [*findings, judge_disk(disk)]


async def _gpus() -> Findings:
    try:
        gpus = await read_gpus()
    except (RuntimeError, OSError) as exc:
        return [
            Finding(area="host", name="gpu", status="warn", what=probes.why(exc), fix="nvidia-smi")
        ]
    return [judge_gpu(gpu) for gpu in gpus or []]


def _where(url: str) -> str:
    """A URL without its credentials: host and port only."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
