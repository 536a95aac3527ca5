"""deploy/kubernetes/overlays/gpu-scale-to-zero: the documented scale-to-zero policy. KEDA
scales the chat engine from zero on the gateway's demand and back to zero once its idle time
passes the window; the gateway's chat profile waits for the engine (`wake`) long enough for a
cold start; everything else is the gpu overlay's. (The schemas, probes and wiring of this
overlay are checked with the others: tests/support/kubernetes_manifests.py lists it.)
"""

import re
from pathlib import Path
from typing import Any

import yaml

from sift_gateway.metrics import GatewayMetrics
from sift_gateway.profiles import load_config
from tests.support.kubernetes_manifests import rendered
from tests.support.kustomize import Manifest, by_kind

TARGET = "overlays/gpu-scale-to-zero"
PROFILE = "chat-model"


def _profiles(target: str) -> dict[str, Any]:
    config = by_kind(rendered(target), "ConfigMap")["gateway-profiles"]
    profiles: dict[str, Any] = yaml.safe_load(config["data"]["profiles.yaml"])
    return profiles


def _scaled(target: str) -> dict[str, Manifest]:
    return by_kind(rendered(target), "ScaledObject")


def test_the_chat_engine_scales_from_zero_on_demand_and_to_zero_when_idle() -> None:
    spec = _scaled(TARGET)["vllm-chat"]["spec"]
    assert spec["minReplicaCount"] == 0
    (trigger,) = spec["triggers"]
    metadata = trigger["metadata"]
    query = metadata["query"]
    assert f'sum(sift_gateway_demand{{profile="{PROFILE}"}})' in query
    idle = rf'min\(sift_gateway_idle_seconds\{{profile="{PROFILE}"\}}\) < bool (\d+)'
    window = re.search(idle, query)
    assert window is not None, query
    assert int(window[1]) >= 300, "an engine that takes minutes to start is kept a while"
    assert query.endswith(" or vector(0)"), "no gateway series yet: zero, not an error"
    assert float(metadata["activationThreshold"]) == 0, "any demand starts an engine"
    assert spec["cooldownPeriod"] <= int(window[1])


def test_the_query_reads_only_metrics_the_gateway_exports() -> None:
    query = _scaled(TARGET)["vllm-chat"]["spec"]["triggers"][0]["metadata"]["query"]
    exported = {family.name for family in GatewayMetrics().registry.collect()}
    assert set(re.findall(r"sift_gateway_\w+", query)) <= exported


def test_the_gateway_waits_for_the_engine_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump(_profiles(TARGET)))
    chat = load_config(path).profiles[PROFILE]  # the gateway accepts the file
    assert chat.wake is not None
    assert chat.wake.url is None, "KEDA sees the waiting requests in demand: no hook"
    assert chat.wake.timeout_s >= 300, "a GPU node, the image and the weights take minutes"
    assert chat.timeouts.total_s > chat.wake.timeout_s, "a request's deadline covers the wake"


def test_everything_else_is_the_gpu_overlays() -> None:
    ours, gpu = _profiles(TARGET), _profiles("overlays/gpu")
    for profiles in (ours, gpu):
        profiles["profiles"][PROFILE].pop("wake", None)
        profiles["profiles"][PROFILE]["timeouts"].pop("total_s")
    assert ours == gpu
    changed = {("ScaledObject", "vllm-chat"), ("ConfigMap", "gateway-profiles")}

    def others(target: str) -> list[Manifest]:
        return [m for m in rendered(target) if (m["kind"], m["metadata"]["name"]) not in changed]

    assert others(TARGET) == others("overlays/gpu")
