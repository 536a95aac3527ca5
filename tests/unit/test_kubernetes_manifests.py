"""deploy/kubernetes: the base and both overlays render, every object follows the Kubernetes
JSON schemas (kubernetes-validate's bundled copy, offline), and the workloads keep the rules
compose keeps: probes, requests, disruption budgets, locked-down pods, secrets by reference,
compose's images, and only `SIFT_*` variables the code reads.

Rendering uses tests/support/kustomize.py (no kustomize package exists on PyPI or Debian);
where `kubectl` exists, its built-in kustomize renders the same overlays and must agree.
KEDA's kinds have no schema there: their fields are checked against a schema written here
from KEDA's CRD (the parts these manifests use), see `KEDA_SCHEMA`.
"""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sift_gateway.settings import GatewayServiceSettings
from tests.support.kubernetes_manifests import (
    ENGINES,
    KUBERNETES,
    OVERLAYS,
    ROOT,
    SETTINGS,
    SIFT,
    TARGETS,
    rendered,
)
from tests.support.kustomize import Manifest, by_kind, containers, merge, render

KUBERNETES_VERSION = "1.30.0"  # the oldest release the manifests target


def _key(manifest: Manifest) -> tuple[str, str]:
    return manifest["kind"], manifest["metadata"]["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_kubectl_kustomize_renders_the_same_objects(target: str) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("no kubectl here: the overlays are rendered by tests/support/kustomize.py")
    built = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES / target)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    theirs = sorted((doc for doc in yaml.safe_load_all(built.stdout) if doc), key=_key)
    assert sorted(rendered(target), key=_key) == theirs


def _validate(manifest: Manifest) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_follows_the_kubernetes_schemas(target: str) -> None:
    checked = 0
    for manifest in rendered(target):
        if manifest["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(manifest, KEDA_SCHEMA[manifest["kind"]])
        else:
            _validate(manifest)  # raises SchemaNotFoundError for a kind it does not know
        checked += 1
    assert checked >= 40, checked


def test_the_schema_check_catches_a_misspelt_or_mistyped_field() -> None:
    deployment = by_kind(rendered("overlays/gpu"), "Deployment")["analyzer"]
    probe = containers(deployment)[0]["livenessProbe"]
    probe["httpGet"]["paht"] = probe["httpGet"].pop("path")
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        _validate(deployment)
    pdb = by_kind(rendered("overlays/gpu"), "PodDisruptionBudget")["analyzer"]
    pdb["spec"]["selector"] = "analyzer"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(pdb)


_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_NAME_REF = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_COUNT = {"type": "integer", "minimum": 0}
_TRIGGER = {
    "type": "object",
    "required": ["type", "metadata"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["rabbitmq", "prometheus"]},
        "name": {"type": "string"},
        "metadata": _STRINGS,  # KEDA's trigger metadata: a map of strings
        "authenticationRef": _NAME_REF,
    },
}
_SECRET_TARGET = {
    "type": "object",
    "required": ["parameter", "name", "key"],
    "additionalProperties": False,
    "properties": {key: {"type": "string"} for key in ("parameter", "name", "key")},
}


def _keda_kind(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"const": "keda.sh/v1alpha1"}, "spec": spec},
    }


# KEDA v2's CRDs (keda.sh/v1alpha1): the fields these manifests use plus the required ones;
# anything else is refused, so that a misspelt field fails here rather than on the cluster.
KEDA_SCHEMA: dict[str, dict[str, Any]] = {
    "ScaledObject": _keda_kind(
        {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": _NAME_REF,
                "minReplicaCount": _COUNT,
                "maxReplicaCount": _COUNT,
                "pollingInterval": _COUNT,
                "cooldownPeriod": _COUNT,
                "triggers": {"type": "array", "minItems": 1, "items": _TRIGGER},
            },
        }
    ),
    "TriggerAuthentication": _keda_kind(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"secretTargetRef": {"type": "array", "items": _SECRET_TARGET}},
        }
    ),
}


def test_the_keda_check_catches_a_misspelt_field_and_a_number_in_metadata() -> None:
    scaled = by_kind(rendered("overlays/cpu"), "ScaledObject")["analyzer"]
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.validate(scaled, KEDA_SCHEMA["ScaledObject"])
    scaled = by_kind(rendered("overlays/cpu"), "ScaledObject")["analyzer"]
    scaled["spec"]["triggers"][0]["metadata"]["value"] = 48
    with pytest.raises(jsonschema.ValidationError, match="48"):
        jsonschema.validate(scaled, KEDA_SCHEMA["ScaledObject"])


def _deployments(target: str) -> dict[str, Manifest]:
    return by_kind(rendered(target), "Deployment")


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_deployment_has_probes_requests_limits_and_a_disruption_budget(target: str) -> None:
    objects = rendered(target)
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == {*SIFT, *ENGINES}
    budgets = by_kind(objects, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (container,) = containers(deployment)
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"], (name, probe)
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name


@pytest.mark.parametrize("name", sorted(SIFT))
def test_each_sift_service_is_probed_on_its_own_health_port(name: str) -> None:
    """The port the image's HEALTH_PORT and the service's settings name (its API port)."""
    port = SETTINGS[name].model_fields[f"{name}_port"].default
    assert port == SIFT[name]
    assert f"ENV HEALTH_PORT={port}" in (ROOT / "Dockerfile").read_text()
    (container,) = containers(_deployments("overlays/gpu")[name])
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": port}
    assert container["ports"] == [{"name": "http", "containerPort": port}]


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_pod_runs_unprivileged(target: str) -> None:
    workloads = [m for m in rendered(target) if containers(m)]
    assert len(workloads) == len(SIFT) + len(ENGINES) + 3 + 3  # + stores + jobs
    for workload in workloads:
        name, pod = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            # Sift's images write nothing outside their /tmp volume.
            if name in SIFT or workload["kind"] == "Job":
                assert context["readOnlyRootFilesystem"] is True, name


def test_services_get_longer_to_stop_than_their_drain() -> None:
    """As compose's stop_grace_period: a SIGKILL before the drain ends abandons messages."""
    for name in SIFT:
        deployment = _deployments("overlays/gpu")[name]
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        env = {e["name"]: e.get("value") for e in containers(deployment)[0]["env"]}
        shutdown = GatewayServiceSettings.model_fields["gateway_shutdown_timeout_s"].default
        drain_s = float(env.get("SIFT_DRAIN_TIMEOUT_S") or shutdown)  # the gateway: shutdown
        assert grace >= drain_s + 20, (name, grace, drain_s)


def test_the_newest_release_kubernetes_validate_knows_accepts_the_overlays_too() -> None:
    """No API or field the manifests use was removed since KUBERNETES_VERSION."""
    version = kubernetes_validate.latest_version()
    for target in OVERLAYS:
        for manifest in rendered(target):
            if not manifest["apiVersion"].startswith("keda.sh/"):
                kubernetes_validate.validate(manifest, version, strict=True)


def test_the_renderer_merges_as_strategic_merge_does() -> None:
    """What tests/support/kustomize.py promises, for machines where kubectl cannot compare."""
    base = {"containers": [{"name": "a", "args": ["x", "y"], "env": [{"name": "K", "value": "1"}]}]}
    patch = {"containers": [{"name": "a", "args": ["z"], "env": [{"name": "N", "value": "2"}]}]}
    (merged,) = merge(base, patch)["containers"]
    assert merged["args"] == ["z"]  # a list of scalars: replaced
    assert merged["env"] == [{"name": "N", "value": "2"}, {"name": "K", "value": "1"}]
    assert merge({"a": 1, "b": 2}, {"b": None}) == {"a": 1}  # null deletes
    assert base["containers"][0]["args"] == ["x", "y"]  # the base is left as it was


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(ValueError, match="commonLabels"):
        render(tmp_path)
