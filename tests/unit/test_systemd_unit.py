"""deploy/systemd/sift.service: brings the compose stack up at boot after Docker, waits for
readiness, and gives the services longer to stop than compose's grace period."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "sift.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def _seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_the_unit_starts_the_stack_after_docker_and_waits_until_it_is_ready() -> None:
    unit = _unit()
    assert "docker.service" in unit["Unit"]["Requires"]
    assert "docker.service" in unit["Unit"]["After"]
    start = unit["Service"]["ExecStart"].split()
    assert start[:3] == ["/usr/bin/docker", "compose", "up"]
    assert "--wait" in start, "active only once every healthcheck passes"
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Service"]["RemainAfterExit"] == "yes"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_waits_longer_than_vllm_warms_up_and_the_services_drain() -> None:
    unit = _unit()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    vllm_start = max(
        _seconds(services[name]["healthcheck"]["start_period"])
        for name in ("vllm-chat", "vllm-chat-cpu", "vllm-embed", "vllm-embed-cpu")
    )
    assert _seconds(unit["Service"]["TimeoutStartSec"]) > vllm_start
    grace = max(_seconds(str(s.get("stop_grace_period", "10s"))) for s in services.values())
    assert unit["Service"]["ExecStop"].split()[:3] == ["/usr/bin/docker", "compose", "stop"]
    assert _seconds(unit["Service"]["TimeoutStopSec"]) > grace


def test_systemd_reads_the_unit_without_complaint(tmp_path: Path) -> None:
    """`systemd-analyze verify` where it exists: no unknown or invalid settings. That this
    machine has no Docker service or engine is not the unit's fault and is let through."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    copy = tmp_path / "sift.service"
    copy.write_text(UNIT.read_text())
    checked = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    complaints = [
        line
        for line in (checked.stdout + checked.stderr).splitlines()
        if line.strip() and "docker" not in line.lower()
    ]
    assert not complaints, complaints
