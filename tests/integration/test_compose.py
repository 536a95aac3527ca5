"""docker-compose.yml stays in step with the code.

The structure checks (every service has a healthcheck, the services wait on healthy
dependencies, every `SIFT_*` variable compose sets is one a service's settings read) and the
check against the Compose specification's JSON schema (check-jsonschema's vendored copy, no
compose plugin needed) run everywhere; `docker compose config` runs where the compose plugin
is installed.
"""

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from scripts.local_vllm.layout import VLLM_VERSION
from sift_analyzer.settings import AnalyzerSettings
from sift_archiver.settings import ArchiverSettings
from sift_collector.settings import CollectorSettings
from sift_common.errors import ConfigError
from sift_common.settings import load_settings
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
OPS = {"prometheus", "alertmanager", "grafana", "node-exporter", "blackbox-exporter"}
OPS_GPU = {"dcgm-exporter"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_every_service_is_there_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == INFRA | set(VLLM) | set(SETTINGS) | set(JOBS) | OPS | OPS_GPU
    for name, service in services.items():
        if name not in JOBS:  # one-shot jobs end, and the others wait for that
            assert service["healthcheck"]["test"], name
    for name, profile in VLLM.items():
        assert services[name]["profiles"] == [profile]
    for name in OPS:
        assert services[name]["profiles"] == ["ops"], name
    for name in OPS_GPU:
        assert services[name]["profiles"] == ["ops-gpu"], name
    assert services["rabbitmq"]["image"].endswith("-management")
    assert "pgvector" in services["postgres"]["image"]
    assert services["vllm-chat"]["image"].startswith("vllm/vllm-openai")


HEALTHY, DONE = "service_healthy", "service_completed_successfully"
JOBS = {  # one-shot: the command, and what it needs to have started
    "migrate": (["sh", "-c", "sift-db upgrade && sift-db roles"], {"postgres": HEALTHY}),
    "broker-provision": (["sift", "broker", "provision"], {"rabbitmq": HEALTHY}),
    "redis-provision": (["sift", "redis", "provision"], {"redis": HEALTHY}),
}


def test_services_wait_for_their_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    broker, redis = {"broker-provision": DONE}, {"redis-provision": DONE}
    needs = {
        **{job: wanted for job, (_, wanted) in JOBS.items()},
        "gateway": {"migrate": DONE, **dict.fromkeys(VLLM, HEALTHY)},
        "collector": {**broker, **redis},
        "analyzer": {**broker, **redis, "migrate": DONE, "gateway": HEALTHY},
        "archiver": {**broker, "migrate": DONE, "gateway": HEALTHY},
    }
    for name, wanted in needs.items():
        depends = services[name]["depends_on"]
        assert {dep: d["condition"] for dep, d in depends.items()} == wanted, name
        target = "archiver" if name in JOBS else name
        assert services[name]["build"]["target"] == target
        assert services[name]["build"]["args"] == {"SERVICE": target}, "one service per image"


def test_each_image_installs_only_its_own_service() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--all-packages" not in dockerfile
    assert dockerfile.count('--no-dev --no-install-workspace --package "sift-${SERVICE}"') == 1
    assert dockerfile.count('--no-dev --no-editable --package "sift-${SERVICE}"') == 1


def test_migrations_and_provisioning_run_once_in_their_own_jobs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for job, (command, _) in JOBS.items():
        assert services[job]["command"][: len(command)] == command, job
        assert services[job]["restart"] == "no", job
    assert services["archiver"]["environment"]["SIFT_ARCHIVER_MIGRATE"] == "false"


SERVICE_USERS = {  # each consumer's own broker, Redis and database user
    "collector": {"SIFT_RABBIT_URL": "sift-collector", "SIFT_REDIS_URL": "sift-collector"},
    "analyzer": {"SIFT_RABBIT_URL": "sift-analyzer", "SIFT_REDIS_URL": "sift-analyzer",
                 "SIFT_DATABASE_URL": "sift_analyzer_login"},
    "archiver": {"SIFT_RABBIT_URL": "sift-archiver", "SIFT_DATABASE_URL": "sift_archiver_login"},
    "gateway": {"SIFT_DATABASE_URL": "sift_gateway_login"},
}  # fmt: skip


def test_every_service_connects_as_its_own_user(compose: dict[str, Any]) -> None:
    for name, users in SERVICE_USERS.items():
        environment = compose["services"][name]["environment"]
        for variable, user in users.items():
            assert environment[variable].split("://", 1)[1].startswith(f"{user}:"), name
        if "SIFT_RABBIT_URL" in users:
            assert environment["SIFT_RABBIT_URL"].endswith("@rabbitmq:5672/sift"), name
            assert environment["SIFT_RABBIT_DECLARE"] == "own", name
    admin = ("RABBITMQ_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD")
    for name in SETTINGS:
        text = yaml.safe_dump(compose["services"][name]["environment"])
        assert not [secret for secret in admin if f"${{{secret}:" in text], name


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


SECRET = re.compile(r"\$\{([A-Z_]*(?:PASSWORD|KEY|KEYS|USER|TOKEN)[A-Z_]*)(:?[-?])")
OPTIONAL_SECRETS = {"HF_TOKEN"}  # only gated models need it
ENTRY_POINTS = {"collector": ["8110"], "archiver": ["8130"], "gateway": ["8100"],
                "rabbitmq": ["5672"], "grafana": ["3000"]}  # fmt: skip
BIND = "${SIFT_BIND_ADDRESS:-127.0.0.1}:"


def test_every_secret_is_required(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    uses = SECRET.findall(text)
    assert {"RABBITMQ_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD"} <= {v for v, _ in uses}
    lax = sorted({v for v, how in uses if how != ":?" and v not in OPTIONAL_SECRETS})
    assert not lax, f"secrets with a default or none required: {lax}; use ${{VAR:?message}}"
    for name in SETTINGS:
        assert compose["services"][name]["environment"]["SIFT_ENV"] == "production", name


def test_only_the_entry_points_are_published_on_localhost_by_default(
    compose: dict[str, Any],
) -> None:
    published = {
        name: service["ports"]
        for name, service in compose["services"].items()
        if "ports" in service
    }
    assert set(published) == set(ENTRY_POINTS), sorted(published)
    for name, ports in published.items():
        for port in ports:
            assert port.startswith(BIND), (name, port)
        assert [port.removeprefix(BIND).split(":")[-1] for port in ports] == ENTRY_POINTS[name]


def test_the_ops_profile_pins_its_images_and_reads_its_configs_read_only(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in OPS | OPS_GPU:
        image = services[name]["image"]
        assert re.search(r":v?\d+\.\d+\.\d+(-[0-9.]+-[a-z0-9.]+)?$", image), (name, image)
        for volume in services[name].get("volumes", []):
            if volume.startswith(("./", "/")):  # bind mounts: configs and the host's root
                assert volume.endswith((":ro", ":ro,rslave")), (name, volume)
    assert services["prometheus"]["secrets"] == ["prometheus_key"]
    assert compose["secrets"]["prometheus_key"]["file"].startswith("${SIFT_PROMETHEUS_KEY_FILE:?")
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert services["alertmanager"]["environment"]["SIFT_ALERT_WEBHOOK_URL"].startswith(
        "${SIFT_ALERT_WEBHOOK_URL:?"
    )


def _gateway_profiles(compose: dict[str, Any]) -> dict[str, Any]:
    """The gateway's profiles as compose writes them, `${VAR:-default}` at its default."""
    content = compose["configs"]["gateway-profiles"]["content"]
    expanded = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", content)
    loaded: dict[str, Any] = yaml.safe_load(expanded)
    return loaded["profiles"]


def _engines_at(compose: dict[str, Any], url: str) -> list[tuple[str, list[str]]]:
    """Every compose service answering at `url`'s host (by name or network alias)."""
    host = url.split("://", 1)[1].split(":", 1)[0]
    engines = []
    for name, service in compose["services"].items():
        aliases = service.get("networks", {}).get("default", {}).get("aliases", [])
        if host == name or host in aliases:
            engines.append((name, service["command"]))
    return engines


# Profile options and the engine flags they need: vLLM refuses a request's priority unless it
# schedules by priority, so priority_scheduling without the flag fails every request.
PROFILE_NEEDS = {"priority_scheduling": ["--scheduling-policy", "priority"]}


def test_every_engine_has_the_flags_its_profile_needs(compose: dict[str, Any]) -> None:
    checked = 0
    for profile_name, profile in _gateway_profiles(compose).items():
        for replica in profile["replicas"]:
            engines = _engines_at(compose, replica)
            assert engines, (profile_name, replica)
            for engine, command in engines:
                for option, flags in PROFILE_NEEDS.items():
                    pairs = list(itertools.pairwise(command))
                    has = (flags[0], flags[1]) in pairs
                    assert has == bool(profile.get(option)), (profile_name, engine, option)
                    checked += 1
    assert checked >= 4, "chat and embed profiles, GPU and CPU engines"


def test_engines_name_the_model_positionally_and_pin_the_image(compose: dict[str, Any]) -> None:
    for name in VLLM:
        service = compose["services"][name]
        assert "--model" not in service["command"], name  # deprecated in vLLM's server
        assert not service["command"][0].startswith("-"), name
        assert not service["image"].endswith(":latest"), name
    assert compose["services"]["vllm-chat"]["image"].endswith(
        f":${{VLLM_VERSION:-v{VLLM_VERSION}}}"
    )


def _env_example(**changes: str) -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values | changes


def _interpolated(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}`, with `env` as .env."""

    def one(match: re.Match[str]) -> str:
        name, how, rest = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if how == ":?":
            raise AssertionError(f"{name} is required: {rest}")
        return rest or ""

    return re.sub(r"\$\{([A-Z_]+)(?:(:[-?])([^}]*))?\}", one, value).replace("$$", "$")


def _service_settings(
    compose: dict[str, Any], name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    for key in [k for k in os.environ if k.startswith("SIFT_")]:
        monkeypatch.delenv(key)
    for key, value in compose["services"][name]["environment"].items():
        monkeypatch.setenv(key, _interpolated(str(value), env))
    return load_settings(SETTINGS[name])


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_the_env_example_starts_every_service_in_production(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What compose hands each service from .env.example passes SIFT_ENV=production."""
    settings = _service_settings(compose, name, _env_example(), monkeypatch)
    assert getattr(settings, "env", None) == "production"


def test_production_refuses_a_development_password_from_the_env(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env_example(SIFT_RABBIT_PASSWORD_COLLECTOR="guest")
    with pytest.raises(ConfigError, match="SIFT_RABBIT_URL"):
        _service_settings(compose, "collector", env, monkeypatch)


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
