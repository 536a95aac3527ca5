"""The idle signal of each profile, what a scale-to-zero policy reads (docs/deploy.md).

Demand is every request the profile owes an answer: queued for a slot, in flight, or waiting
for its engine to wake (`sift_gateway.wake`). Idle time is how long demand has been zero:
the seconds since the last request finished (or since the gateway started), 0 while there is
demand. The gateway's own probes are not requests: they never keep an engine awake.
"""

from typing import Any

from sift_gateway.registry import ProfileRuntime
from sift_gateway.state import GatewayState


def demand(runtime: ProfileRuntime, waiting_for_wake: int) -> int:
    admission = runtime.admission
    return admission.in_flight + len(admission.waiters) + waiting_for_wake


def idle_seconds(runtime: ProfileRuntime, demand_now: int, now: float) -> float:
    if demand_now > 0:
        return 0.0
    return max(now - runtime.admission.finished_at, 0.0)


def observe(state: GatewayState, now: float) -> None:
    """Set the demand and idle gauges of every profile (at each scrape of /metrics)."""
    for runtime in state.registry.profiles.values():
        current = demand(runtime, state.waker.waiting(runtime.name))
        state.metrics.demand.labels(runtime.name).set(current)
        state.metrics.idle.labels(runtime.name).set(idle_seconds(runtime, current, now))


def describe(state: GatewayState, runtime: ProfileRuntime, now: float) -> dict[str, Any]:
    """The same, plus the wake's state, for /admin/profiles."""
    current = demand(runtime, state.waker.waiting(runtime.name))
    return {
        "demand": current,
        "idle_s": round(idle_seconds(runtime, current, now), 1),
        "wake": state.waker.status(runtime),
    }
