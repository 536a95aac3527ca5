"""deploy/kubernetes runs what docker-compose.yml runs: the same images, commands, users,
variables and model profiles; secrets only by reference, each one the example Secrets hold;
and what the example Secrets hand each service starts it with SIFT_ENV=production."""

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.local_vllm.layout import VLLM_VERSION
from sift_common.settings import load_settings
from tests.support.kubernetes_manifests import ENGINES, KUBERNETES, ROOT, SETTINGS, rendered
from tests.support.kustomize import Manifest, by_kind, containers

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
EXAMPLE = {
    doc["metadata"]["name"]: doc["stringData"]
    for doc in yaml.safe_load_all((KUBERNETES / "secrets.example.yaml").read_text())
}
JOBS = ("migrate", "broker-provision", "redis-provision")
STORES = ("rabbitmq", "redis", "postgres")
SECRET_NAME = re.compile(r"PASSWORD|PASS$|KEY|TOKEN|SECRET|_USER$")
REFERENCE = re.compile(r"\$\(([A-Z_]+)\)")


def _workloads(target: str = "overlays/gpu") -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in rendered(target) if containers(m)}


def _env(name: str, target: str = "overlays/gpu") -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = containers(_workloads(target)[name])[0].get("env", [])
    return env


def test_no_secret_is_written_into_a_manifest() -> None:
    assert not by_kind(rendered("overlays/gpu"), "Secret"), "Secrets are made beforehand"
    for name in _workloads():
        for variable in _env(name):
            if SECRET_NAME.search(variable["name"]) and not variable["name"].endswith("_FILE"):
                assert "secretKeyRef" in variable["valueFrom"], (name, variable)
            for credentials in re.findall(r"://([^@/]*)@", variable.get("value", "")):
                password = credentials.partition(":")[2]
                assert REFERENCE.fullmatch(password), (name, variable["name"])


def test_every_secret_referenced_is_in_the_example_with_placeholders_only() -> None:
    referenced = set()
    for name, workload in _workloads().items():
        for variable in _env(name):
            if ref := variable.get("valueFrom", {}).get("secretKeyRef"):
                referenced.add((ref["name"], ref["key"]))
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in volume:
                referenced |= {(volume["secret"]["secretName"], i["key"])
                               for i in volume["secret"]["items"]}  # fmt: skip
    for auth in by_kind(rendered("overlays/gpu"), "TriggerAuthentication").values():
        referenced |= {(ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]}
    example = {(secret, key) for secret, data in EXAMPLE.items() for key in data}
    assert referenced == example, referenced ^ example
    for secret, data in EXAMPLE.items():
        for key, value in data.items():
            if key.endswith(("password", "key", "-url", ".json")):
                assert "change-me" in value, (secret, key)


def test_variables_reference_only_variables_defined_before_them() -> None:
    """Kubernetes expands $(VAR) from earlier entries only; a later one stays literal."""
    for name in _workloads():
        defined: set[str] = set()
        for variable in _env(name):
            for used in REFERENCE.findall(variable.get("value", "")):
                assert used in defined, (name, variable["name"], used)
            defined.add(variable["name"])


def test_the_images_are_composes() -> None:
    images = {n: containers(w)[0]["image"] for n, w in _workloads().items()}
    for name in (*SETTINGS, *JOBS, *STORES):
        wanted = COMPOSE["services"][name]["image"].replace("${SIFT_VERSION:-dev}", "dev")
        assert images[name] == wanted, name
    for engine in ENGINES:
        assert images[engine] == f"vllm/vllm-openai:v{VLLM_VERSION}"
        cpu = containers(_workloads("overlays/cpu")[engine])[0]["image"]
        assert f"${{VLLM_CPU_IMAGE:-{cpu}}}" == COMPOSE["services"][f"{engine}-cpu"]["image"]


def test_the_jobs_run_composes_commands_and_every_service_its_image_default() -> None:
    workloads = _workloads()
    for job in JOBS:
        assert containers(workloads[job])[0]["command"] == COMPOSE["services"][job]["command"]
    for name in SETTINGS:
        assert "command" not in containers(workloads[name])[0], name  # the image's CMD


def _read_by_the_code(variable: str) -> bool:
    """Named in the code, or made from a per-service template (SIFT_DB_PASSWORD_{})."""
    template = re.sub(r"_(ARCHIVER|ANALYZER|COLLECTOR|GATEWAY)$", "_{}", variable)
    sources = [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]
    return any(f'"{variable}"' in text or f'"{template}"' in text
               for text in (path.read_text() for path in sources))  # fmt: skip


def test_every_sift_variable_set_is_one_the_code_reads() -> None:
    for name, settings in SETTINGS.items():
        known = {f"SIFT_{field.upper()}" for field in settings.model_fields}
        sift = {v["name"] for v in _env(name) if v["name"].startswith("SIFT_")}
        assert sift <= known, (name, sorted(sift - known))
        compose = {k for k in COMPOSE["services"][name]["environment"] if k.startswith("SIFT_")}
        # compose's key maps become files mounted from the Secret (rotation without a restart)
        files = {v.removesuffix("_FILE") for v in sift if v.endswith("_API_KEYS_FILE")}
        assert sift - {f"{v}_FILE" for v in files} == compose - files, name
    settings_read = {f"SIFT_{f.upper()}" for s in SETTINGS.values() for f in s.model_fields}
    for job in JOBS:
        for variable in (v["name"] for v in _env(job) if v["name"].startswith("SIFT_")):
            assert variable in settings_read or _read_by_the_code(variable), (job, variable)
            assert variable in COMPOSE["services"][job]["environment"], (job, variable)


SERVICE_USERS = {  # as tests/integration/test_compose.py: each its own user
    "collector": {"SIFT_RABBIT_URL": "sift-collector", "SIFT_REDIS_URL": "sift-collector"},
    "analyzer": {"SIFT_RABBIT_URL": "sift-analyzer", "SIFT_REDIS_URL": "sift-analyzer",
                 "SIFT_DATABASE_URL": "sift_analyzer_login"},
    "archiver": {"SIFT_RABBIT_URL": "sift-archiver", "SIFT_DATABASE_URL": "sift_archiver_login"},
    "gateway": {"SIFT_DATABASE_URL": "sift_gateway_login"},
}  # fmt: skip


def test_every_service_connects_as_its_own_user_and_never_sees_the_admins() -> None:
    for name, users in SERVICE_USERS.items():
        env = {v["name"]: v for v in _env(name)}
        for variable, user in users.items():
            assert env[variable]["value"].split("://", 1)[1].startswith(f"{user}:"), name
        refs = {v["valueFrom"]["secretKeyRef"]["name"] for v in env.values() if "valueFrom" in v}
        assert refs == {f"sift-{name}"}, (name, refs)
        assert env["SIFT_ENV"]["value"] == "production", name


def _resolved_env(name: str, tmp_path: Path) -> dict[str, str]:
    """What the kubelet hands the container: Secret values, $(VAR) expanded, files mounted
    (written under tmp_path, the _FILE variables pointed there)."""
    values: dict[str, str] = {}
    for variable in _env(name):
        if "valueFrom" in variable:
            ref = variable["valueFrom"]["secretKeyRef"]
            value = EXAMPLE[ref["name"]][ref["key"]]
        else:
            value = REFERENCE.sub(lambda m: values[m.group(1)], variable["value"])
        if variable["name"].endswith("_FILE"):
            path = tmp_path / Path(value).name
            path.write_text(EXAMPLE[f"sift-{name}"][Path(value).name])
            value = str(path)
        values[variable["name"]] = value
    return values


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_the_example_secrets_start_every_service_in_production(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("SIFT_")]:
        monkeypatch.delenv(key)
    for key, value in _resolved_env(name, tmp_path).items():
        monkeypatch.setenv(key, value)
    if name == "gateway":  # the ConfigMap, where the Deployment mounts it
        monkeypatch.setenv("SIFT_GATEWAY_PROFILES", str(_profiles_file(tmp_path)))
    settings = load_settings(SETTINGS[name])
    assert getattr(settings, "env", None) == "production"


def _profiles_file(tmp_path: Path) -> Path:
    config = by_kind(rendered("overlays/gpu"), "ConfigMap")["gateway-profiles"]
    path = tmp_path / "profiles.yaml"
    path.write_text(config["data"]["profiles.yaml"])
    return path


def test_the_gateway_profiles_are_composes() -> None:
    content = COMPOSE["configs"]["gateway-profiles"]["content"]
    composes = yaml.safe_load(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", content))
    config = by_kind(rendered("overlays/gpu"), "ConfigMap")["gateway-profiles"]
    assert yaml.safe_load(config["data"]["profiles.yaml"]) == composes
    mounts = containers(_workloads()["gateway"])[0]["volumeMounts"]
    path = {v["name"]: v.get("value") for v in _env("gateway")}["SIFT_GATEWAY_PROFILES"]
    assert {"name": "profiles", "mountPath": str(Path(path).parent), "readOnly": True} in mounts


def test_rabbitmq_runs_the_shipped_advanced_config_in_compose_and_kubernetes() -> None:
    shipped = ROOT / "deploy" / "rabbitmq" / "advanced.config"
    target = "/etc/rabbitmq/advanced.config"
    config = COMPOSE["configs"]["rabbitmq-advanced"]
    assert (ROOT / config["file"]).resolve() == shipped
    assert {"source": "rabbitmq-advanced", "target": target} in COMPOSE["services"]["rabbitmq"][
        "configs"
    ]
    for overlay in ("overlays/cpu", "overlays/gpu"):
        config_map = by_kind(rendered(overlay), "ConfigMap")["rabbitmq-config"]
        assert config_map["data"]["advanced.config"] == shipped.read_text(), "word for word"
        rabbitmq = _workloads(overlay)["rabbitmq"]
        mounts = containers(rabbitmq)[0]["volumeMounts"]
        assert {"name": "config", "mountPath": target, "subPath": "advanced.config"} in mounts
        volumes = rabbitmq["spec"]["template"]["spec"]["volumes"]
        assert {"name": "config", "configMap": {"name": "rabbitmq-config"}} in volumes
