"""docker-compose.yml stays in step with the code.

The structure checks (every service has a healthcheck, the services wait on healthy
dependencies, every `SIFT_*` variable compose sets is one a service's settings read) and the
check against the Compose specification's JSON schema (check-jsonschema's vendored copy, no
compose plugin needed) run everywhere; `docker compose config` runs where the compose plugin
is installed.
"""

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from sift_analyzer.settings import AnalyzerSettings
from sift_archiver.settings import ArchiverSettings
from sift_collector.settings import CollectorSettings
from sift_gateway.settings import GatewayServiceSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewayServiceSettings,
    "collector": CollectorSettings,
    "analyzer": AnalyzerSettings,
    "archiver": ArchiverSettings,
}
INFRA = {"rabbitmq", "redis", "postgres"}
VLLM = {"vllm-chat": "gpu", "vllm-embed": "gpu", "vllm-chat-cpu": "cpu", "vllm-embed-cpu": "cpu"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_every_service_is_there_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == INFRA | set(VLLM) | set(SETTINGS)
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
    for name, profile in VLLM.items():
        assert services[name]["profiles"] == [profile]
    assert services["rabbitmq"]["image"].endswith("-management")
    assert "pgvector" in services["postgres"]["image"]
    assert services["vllm-chat"]["image"].startswith("vllm/vllm-openai")


def test_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    needs = {
        "gateway": {"postgres", *VLLM},
        "collector": {"rabbitmq", "redis"},
        "analyzer": {"rabbitmq", "redis", "postgres", "gateway"},
        "archiver": {"rabbitmq", "postgres", "gateway"},
    }
    for name, wanted in needs.items():
        depends = services[name]["depends_on"]
        assert set(depends) == wanted, name
        assert {d["condition"] for d in depends.values()} == {"service_healthy"}, name
        assert services[name]["build"]["target"] == name


def test_every_sift_variable_compose_sets_is_read_by_the_code(compose: dict[str, Any]) -> None:
    for name, settings in SETTINGS.items():
        known = {f"SIFT_{field.upper()}" for field in settings.model_fields}
        environment = compose["services"][name]["environment"]
        sift_vars = {key for key in environment if key.startswith("SIFT_")}
        assert sift_vars, name
        assert sift_vars <= known, (name, sorted(sift_vars - known))


def test_consumers_get_longer_to_stop_than_their_drain(compose: dict[str, Any]) -> None:
    """A SIGKILL before the drain ends would abandon the messages in flight."""
    for name in ("collector", "analyzer", "archiver"):
        service = compose["services"][name]
        drain_s = float(service["environment"]["SIFT_DRAIN_TIMEOUT_S"])
        grace = str(service["stop_grace_period"])
        assert grace.endswith("s"), (name, grace)
        assert float(grace[:-1]) >= drain_s + 20, (name, grace, drain_s)


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    checker = Path(sys.executable).parent / "check-jsonschema"
    command = [str(checker), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True)


def test_the_compose_file_follows_the_compose_specification() -> None:
    checked = _check_compose_schema(COMPOSE)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_catches_a_malformed_compose_file(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["collector"]["depends_on"]["rabbitmq"] = {"condition": "when_ready"}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    checked = _check_compose_schema(path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "services.collector" in checked.stdout


def _compose_plugin() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker CLI on this machine"
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"docker compose plugin missing: {(probe.stderr or probe.stdout).strip()[:200]}"
    return None


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_docker_compose_config_accepts_the_file(profile: str, tmp_path: Path) -> None:
    if (missing := _compose_plugin()) is not None:
        pytest.skip(missing)
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text())
    command = ["docker", "compose", "--env-file", str(env_file), "--profile", profile]
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
