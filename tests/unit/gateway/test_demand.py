"""The idle signal (demand, idle seconds) and the `wake` option of a profile."""

import time

import pytest

from sift_gateway.demand import demand, idle_seconds
from sift_gateway.profiles import GatewayConfig
from sift_gateway.registry import ProfileRuntime, Registry


def runtime(**profile: object) -> ProfileRuntime:
    base = {"kind": "chat", "served_model": "m", "replicas": ["http://a:8000"], **profile}
    config = GatewayConfig.model_validate({"profiles": {"main": base}})
    return Registry(config).profiles["main"]


def test_demand_counts_queued_in_flight_and_waiting_for_a_wake() -> None:
    main = runtime()
    assert demand(main, 0) == 0
    assert main.admission.try_acquire()
    assert demand(main, 3) == 4


def test_idle_is_time_since_the_last_request_finished_and_zero_under_demand() -> None:
    main = runtime()
    now = time.monotonic()
    assert idle_seconds(main, 0, now + 10) >= 10, "idle since the gateway started"
    assert main.admission.try_acquire()
    assert idle_seconds(main, demand(main, 0), now + 10) == 0
    main.admission.release()
    finished = main.admission.finished_at
    assert finished >= now
    assert idle_seconds(main, 0, finished + 5) == pytest.approx(5)
    assert idle_seconds(main, 1, finished + 5) == 0, "a request waiting for a wake counts"


def test_wake_defaults_and_checks() -> None:
    wake = runtime(wake={}).profile.wake
    assert wake is not None
    assert (wake.url, wake.timeout_s, wake.poll_s) == (None, 300, 2)
    assert runtime().profile.wake is None
    with pytest.raises(ValueError, match="timeout_s"):
        runtime(wake={"timeout_s": 0})
    with pytest.raises(ValueError, match="command"):
        runtime(wake={"command": ["start-engine"]})  # a hook is a URL (docs/gateway.md)
