"""`sift doctor`'s judging of the vLLM engines, the gateway's breakers and the request logs:
readings in, findings out, no I/O."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sift_common.ops.doctor_model import Area, Finding
from sift_common.ops.doctor_thresholds import ERROR_RATE_FAIL, KV_CACHE_WARN

ADMIN_KEY_VARIABLE = "SIFT_GATEWAY_ADMIN_KEY"
METRICS_KEY_VARIABLE = "SIFT_METRICS_KEY"
PROFILES_VARIABLE = "SIFT_GATEWAY_PROFILES"
DATABASE_VARIABLE = "SIFT_DATABASE_URL"
GATEWAY_VARIABLE = "SIFT_GATEWAY_URL"


@dataclass(frozen=True)
class EngineReading:
    """One vLLM engine: its `/metrics`, and what the gateway's `/admin/upstreams` says of it."""

    profile: str
    url: str
    running: float | None = None
    waiting: float | None = None
    kv_cache: float | None = None  # fraction 0..1
    error: str | None = None  # its /metrics could not be read
    gateway_healthy: bool | None = None  # None: the gateway's view was not read
    gateway_error: str | None = None


@dataclass(frozen=True)
class BreakerReading:
    """`sift_gateway_breaker_open` per upstream; `error` when /metrics could not be read,
    `refused` when it wants a key this run did not have."""

    open_by_upstream: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    refused: bool = False


@dataclass(frozen=True)
class ProfileStats:
    """One model profile's request-log rows over the window."""

    profile: str
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None


def _percent(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0%}"


def _count(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"


def judge_engine(reading: EngineReading) -> Finding:
    name, url = f"{reading.profile} {reading.url}", reading.url
    diagnose = f"curl -sf {url}/health; docker compose ps; docker compose logs --tail 100 <engine>"
    if reading.error is not None:
        return Finding(
            area="engines",
            name=name,
            status="fail",
            what=f"cannot read {url}/metrics ({reading.error})",
            fix=diagnose,
        )
    load = (
        f"{_count(reading.running)} running, {_count(reading.waiting)} waiting, "
        f"KV cache {_percent(reading.kv_cache)}"
    )
    if reading.gateway_healthy is False:
        return Finding(
            area="engines",
            name=name,
            status="fail",
            what=f"the gateway's probes fail ({reading.gateway_error}); {load}",
            fix=diagnose,
        )
    if reading.kv_cache is not None and reading.kv_cache > KV_CACHE_WARN:
        return Finding(
            area="engines",
            name=name,
            status="warn",
            what=f"KV cache above {KV_CACHE_WARN:.0%}: {load}",
            fix="add a replica, or lower max_in_flight_per_replica in "
            f"the profiles file ({PROFILES_VARIABLE})",
        )
    return Finding(area="engines", name=name, status="ok", what=load)


def judge_breakers(reading: BreakerReading, gateway_url: str) -> list[Finding]:
    if reading.refused:
        return [
            Finding(
                area="breakers",
                name="gateway",
                status="skip",
                what=f"{gateway_url}/metrics wants a key with the `metrics` scope: "
                f"set {METRICS_KEY_VARIABLE}",
            )
        ]
    if reading.error is not None:
        return [
            Finding(
                area="breakers",
                name="gateway",
                status="fail",
                what=f"cannot read {gateway_url}/metrics ({reading.error}); "
                f"is {GATEWAY_VARIABLE} right?",
                fix="docker compose ps gateway && docker compose logs --tail 100 gateway",
            )
        ]
    opened = sorted(url for url, value in reading.open_by_upstream.items() if value >= 1)
    if not opened:
        # A replica's series appears once a request has gone to it: none yet is normal.
        seen = len(reading.open_by_upstream)
        return [
            Finding(
                area="breakers",
                name="gateway",
                status="ok",
                what=f"no breaker open ({seen} replica(s) have served requests)",
            )
        ]
    upstreams = (
        f"curl -sH 'Authorization: Bearer ${ADMIN_KEY_VARIABLE}' {gateway_url}/admin/upstreams"
    )
    return [
        Finding(
            area="breakers",
            name=url,
            status="fail",
            what="breaker open: the gateway sends this engine no traffic",
            fix=f"{upstreams}  (its last_error); curl -sf {url}/health",
        )
        for url in opened
    ]


def judge_request_logs(stats: Sequence[ProfileStats], window: str) -> list[Finding]:
    if not stats:
        return [
            Finding(
                area="requests",
                name="gateway.request_logs",
                status="ok",
                what=f"no requests in the last {window}",
            )
        ]
    return [_judge_profile(row, window) for row in stats]


def _judge_profile(row: ProfileStats, window: str) -> Finding:
    rate = row.errors / row.requests if row.requests else 0.0
    latency = f"p50 {_ms(row.p50_ms)}, p95 {_ms(row.p95_ms)}"
    what = (
        f"{row.requests} requests in the last {window}, {row.errors} errors ({rate:.1%}); {latency}"
    )
    if rate > ERROR_RATE_FAIL:
        return Finding(
            area="requests",
            name=row.profile,
            status="fail",
            what=f"error rate above {ERROR_RATE_FAIL:.0%}: {what}",
            fix=f"sift report --since {window}; sift doctor (engines, breakers)",
        )
    return Finding(area="requests", name=row.profile, status="ok", what=what)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def skipped(area: Area, name: str, what: str) -> Finding:
    return Finding(area=area, name=name, status="skip", what=what)


def unreachable_database(error: str) -> Finding:
    return Finding(
        area="requests",
        name="gateway.request_logs",
        status="fail",
        what=f"cannot query the request logs ({error}); is {DATABASE_VARIABLE} right?",
        fix="sift-db current (connects, prints the schema revision); sift-db upgrade",
    )
