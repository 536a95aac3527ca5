"""deploy/kubernetes: who may talk to whom (NetworkPolicies against the architecture's
"talks to" and compose's dependencies), which Services exist (compose's names, entry points
as compose publishes them), how KEDA scales (the topology's queues, the gateway's demand per
profile) and what each overlay gives vLLM (compose's gpu and cpu profiles)."""

import itertools
import re
from typing import Any

import pytest
import yaml

from sift_common.messaging.topology import Topology
from tests.support.kubernetes_manifests import ENGINES, OVERLAYS, ROOT, SIFT, rendered
from tests.support.kustomize import Manifest, by_kind, containers

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
MONITORING = "namespace:monitoring"
KEDA = "namespace:keda"
ANYWHERE = "anywhere"
# Who reaches whom, on which port: ARCHITECTURE.md's "talks to" for the services, compose's
# depends_on for the jobs, the gateway's profiles for vLLM. Nothing else is allowed.
TALKS_TO = {
    "collector": {("rabbitmq", 5672), ("redis", 6379)},
    "analyzer": {("rabbitmq", 5672), ("redis", 6379), ("postgres", 5432), ("gateway", 8100)},
    "archiver": {("rabbitmq", 5672), ("postgres", 5432), ("gateway", 8100)},
    "gateway": {("postgres", 5432), ("vllm-chat", 8000), ("vllm-embed", 8000)},
    "broker-provision": {("rabbitmq", 5672), ("rabbitmq", 15672)},
    "redis-provision": {("redis", 6379)},
    "migrate": {("postgres", 5432)},
    **{name: set() for name in ("rabbitmq", "redis", "postgres", "vllm-chat", "vllm-embed")},
}
# Entry points, from anywhere, on the ports compose publishes.
ENTRY_POINTS = {("gateway", 8100), ("collector", 8110), ("archiver", 8130), ("rabbitmq", 5672)}
OUTSIDE = {  # reached from outside the namespace, besides the entry points
    (MONITORING, "analyzer", 8120),  # its health and metrics, nothing else
    (KEDA, "rabbitmq", 15672),  # queue depths
    (MONITORING, "vllm-chat", 8000),
    (MONITORING, "vllm-embed", 8000),
}


def _peers(rule_peers: list[dict[str, Any]] | None) -> set[str]:
    if not rule_peers:
        return {ANYWHERE}
    names = set()
    for peer in rule_peers:
        if "podSelector" in peer and "namespaceSelector" not in peer:
            names.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
        elif "namespaceSelector" in peer and "podSelector" not in peer:
            namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            names.add(f"namespace:{namespace}")
        elif "ipBlock" in peer:
            names.add(f"ip:{peer['ipBlock']['cidr']}")
    return names


def _flows(policies: dict[str, Manifest], direction: str) -> set[tuple[str, str, int]]:
    """(from, to, port) for every rule of every per-component policy."""
    flows = set()
    for policy in policies.values():
        selector = policy["spec"]["podSelector"].get("matchLabels")
        if not selector:
            continue  # the namespace-wide ones: default deny, DNS
        own = selector["app.kubernetes.io/name"]
        peers_key = "from" if direction == "ingress" else "to"
        for rule in policy["spec"].get(direction, []):
            for peer, port in itertools.product(_peers(rule.get(peers_key)), rule["ports"]):
                pair = (peer, own) if direction == "ingress" else (own, peer)
                flows.add((*pair, port["port"]))
    return flows


@pytest.fixture(scope="module")
def policies() -> dict[str, Manifest]:
    return by_kind(rendered("overlays/gpu"), "NetworkPolicy")


def test_everything_is_denied_but_dns_unless_a_policy_allows_it(
    policies: dict[str, Manifest],
) -> None:
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    (dns,) = policies["dns"]["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    workloads = {m["metadata"]["name"] for m in rendered("overlays/gpu") if containers(m)}
    assert set(TALKS_TO) == workloads
    assert set(policies) == workloads | {"default-deny", "dns"}


def test_each_pod_reaches_only_what_it_talks_to(policies: dict[str, Manifest]) -> None:
    egress = _flows(policies, "egress")
    for name, wanted in TALKS_TO.items():
        reached = {(to, port) for source, to, port in egress if source == name}
        if name in ENGINES:  # the weights' first download: HTTPS out of the cluster only
            assert reached == {("ip:0.0.0.0/0", 443)}, name
        else:
            assert reached == wanted, name


def test_each_pod_is_reached_only_by_what_talks_to_it(policies: dict[str, Manifest]) -> None:
    ingress = _flows(policies, "ingress")
    expected = {(source, to, port) for source, flows in TALKS_TO.items() for to, port in flows}
    entry = {(ANYWHERE, to, port) for to, port in ENTRY_POINTS}
    # An entry point's port is open to all: a flow to it needs no rule of its own.
    inside = {flow for flow in expected if (flow[1], flow[2]) not in ENTRY_POINTS}
    assert ingress == inside | entry | OUTSIDE


def test_services_are_composes_names_and_only_the_published_are_entry_points() -> None:
    services = by_kind(rendered("overlays/gpu"), "Service")
    names = {"gateway", "collector", "archiver", "rabbitmq", "redis", "postgres", *ENGINES}
    assert set(services) == names
    assert names <= set(COMPOSE["services"])
    published = {
        name: [int(p.rsplit(":", 1)[1]) for p in s["ports"]]
        for name, s in COMPOSE["services"].items()
        if "ports" in s and name in SIFT
    }
    for name, service in services.items():
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", name
        entry = service["metadata"]["labels"].get("sift.io/entry-point") == "true"
        assert entry == (name in published), name
        if entry:
            assert [p["port"] for p in service["spec"]["ports"]] == published[name]


# The rabbitmq scaler's metadata keys (KEDA's docs); KEDA ignores an unknown one silently.
RABBITMQ_METADATA = {"protocol", "mode", "value", "activationValue", "queueName", "vhostName"}
PROMETHEUS_METADATA = {"serverAddress", "query", "threshold", "activationThreshold"}


def _scaled() -> dict[str, Manifest]:
    return by_kind(rendered("overlays/gpu"), "ScaledObject")


def test_the_consumers_scale_on_the_depth_of_the_queues_they_own() -> None:
    topology = Topology()  # production's namespace: empty
    (auth,) = by_kind(rendered("overlays/gpu"), "TriggerAuthentication").values()
    assert [r["parameter"] for r in auth["spec"]["secretTargetRef"]] == ["host"]
    for consumer in ("collector", "analyzer", "archiver"):
        spec = _scaled()[consumer]["spec"]
        assert spec["scaleTargetRef"] == {"name": consumer}
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
        owned = {topology.work_queue(q) for q in topology.consumer_queues if q.consumer == consumer}
        triggers = spec["triggers"]
        assert {t["metadata"]["queueName"] for t in triggers} == owned, consumer
        for trigger in triggers:
            assert trigger["type"] == "rabbitmq"
            assert set(trigger["metadata"]) <= RABBITMQ_METADATA, consumer
            assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
            assert trigger["metadata"]["vhostName"] == "sift"  # compose's vhost
            assert trigger["metadata"]["mode"] == "QueueLength"
            assert int(trigger["metadata"]["value"]) > 0


def test_vllm_scales_on_the_gateways_demand_for_its_profile() -> None:
    config = by_kind(rendered("overlays/gpu"), "ConfigMap")["gateway-profiles"]
    profiles = yaml.safe_load(config["data"]["profiles.yaml"])["profiles"]
    for engine in ENGINES:
        (trigger,) = _scaled()[engine]["spec"]["triggers"]
        (name,) = [n for n, p in profiles.items() if p["replicas"] == [f"http://{engine}:8000"]]
        query = trigger["metadata"]["query"]
        for metric in ("sift_gateway_queued", "sift_gateway_in_flight"):
            assert f'{metric}{{profile="{name}"}}' in query, engine
        assert trigger["type"] == "prometheus"
        assert set(trigger["metadata"]) <= PROMETHEUS_METADATA, engine
        limit = profiles[name]["max_in_flight_per_replica"]
        assert 0 < float(trigger["metadata"]["threshold"]) <= limit, engine
        assert _scaled()[engine]["spec"]["minReplicaCount"] >= 1  # no cold first request


def test_keda_owns_the_replica_count_of_what_it_scales() -> None:
    """A `replicas` in the Deployment would fight KEDA's HPA on every apply."""
    deployments = by_kind(rendered("overlays/gpu"), "Deployment")
    assert set(_scaled()) == set(deployments) - {"gateway"}
    for name in _scaled():
        assert "replicas" not in deployments[name]["spec"], name
    assert deployments["gateway"]["spec"]["replicas"] >= 2


def _engine(target: str, name: str) -> dict[str, Any]:
    deployment = by_kind(rendered(target), "Deployment")[name]
    return {"pod": deployment["spec"]["template"]["spec"], **containers(deployment)[0]}


@pytest.mark.parametrize("target", OVERLAYS)
def test_each_engine_serves_its_profiles_model_with_the_flags_the_profile_needs(
    target: str,
) -> None:
    config = by_kind(rendered(target), "ConfigMap")["gateway-profiles"]
    profiles = yaml.safe_load(config["data"]["profiles.yaml"])["profiles"]
    for profile in profiles.values():
        (url,) = profile["replicas"]
        engine = _engine(target, url.split("//")[1].split(":")[0])
        assert engine["args"][0] == profile["served_model"]  # positional, as compose
        pairs = list(itertools.pairwise(engine["args"]))
        has_priority = ("--scheduling-policy", "priority") in pairs
        assert has_priority == bool(profile.get("priority_scheduling")), url


@pytest.mark.parametrize("engine", ENGINES)
def test_the_overlays_pass_vllm_what_composes_profiles_pass(engine: str) -> None:
    gpu, cpu = _engine("overlays/gpu", engine), _engine("overlays/cpu", engine)
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["pod"]["nodeSelector"]
    assert gpu["pod"]["tolerations"]
    assert "nvidia.com/gpu" not in str(cpu)
    assert "nodeSelector" not in cpu["pod"]
    for built, service in ((gpu, engine), (cpu, f"{engine}-cpu")):
        command = [_at_default(arg) for arg in COMPOSE["services"][service]["command"]]
        assert built["args"] == command, service
    compose_env = COMPOSE["services"][f"{engine}-cpu"]["environment"]
    cpu_env = {e["name"]: e.get("value") for e in cpu["env"]}
    assert cpu_env["VLLM_CPU_KVCACHE_SPACE"] == _at_default(compose_env["VLLM_CPU_KVCACHE_SPACE"])


def _at_default(value: str) -> str:
    """Compose's `${VAR:-default}` at its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
