"""Sift's Prometheus alert rules, scrape config and Alertmanager config (deploy/), checked by
the tools that will load them: promtool (rules, unit tests of every alert firing and not
firing, the config) and amtool. See docs/operations.md."""

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sift_common.ops import doctor_thresholds as doctor
from tests.support.ops_tools import DEPLOY, ROOT, ops_tool, run_tool

PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER = DEPLOY / "alertmanager"
SECRET = "/run/secrets/prometheus_key"


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    checked = run_tool(ops_tool("promtool"), "check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_fires_and_stays_quiet_where_its_unit_tests_say() -> None:
    assert RULE_TESTS
    tested = run_tool(ops_tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(RULE_TESTS), tested.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_every_alert_has_a_severity_a_summary_and_a_command_to_run() -> None:
    alerts = _alerts()
    assert len(alerts) >= 11
    for rule in alerts:
        name, annotations = rule["alert"], rule.get("annotations", {})
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert annotations.get("summary"), name
        assert annotations.get("description"), name
        assert re.search(r"`(sift|docker|nvidia-smi|curl) [^`]*`", annotations["runbook"]), name


def test_the_issue_s_alerts_are_all_there() -> None:
    wanted = {
        "SiftGatewayErrorRateHigh", "SiftVllmKvCacheHigh", "SiftGpuMemoryHigh",
        "SiftDiskAlmostFull", "SiftDeadLetterQueueGrowing", "SiftQueueOldestMessageOverSLA",
        "SiftQueueWithoutConsumers", "SiftGatewayBreakerOpen", "SiftServiceNotReady",
        "SiftGoodputBelowTarget",
    }  # fmt: skip
    assert wanted <= {rule["alert"] for rule in _alerts()}


def _config_with_key(tmp_path: Path) -> Path:
    """prometheus.yml and its rules in `tmp_path`, the compose secret's path pointed at a real
    file there (promtool checks that the credentials file exists)."""
    key = tmp_path / "prometheus_key"
    key.write_text("k" * 40)
    config = tmp_path / "prometheus.yml"
    config.write_text((PROMETHEUS / "prometheus.yml").read_text().replace(SECRET, str(key)))
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    return config


def test_promtool_accepts_the_scrape_config_and_its_rule_files(tmp_path: Path) -> None:
    checked = run_tool(ops_tool("promtool"), "check", "config", str(_config_with_key(tmp_path)))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 21 rules found" in checked.stdout + checked.stderr


def test_prometheus_scrapes_every_service_at_its_compose_name_and_port() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    expected = {
        "collector": "collector:8110", "analyzer": "analyzer:8120", "archiver": "archiver:8130",
        "gateway": "gateway:8100", "vllm-chat": "vllm-chat:8000",
        "vllm-embed": "vllm-embed:8000", "rabbitmq": "rabbitmq:15692",
        "node": "node-exporter:9100", "dcgm": "dcgm-exporter:9400",
    }  # fmt: skip
    for job, target in expected.items():
        assert jobs[job]["static_configs"][0]["targets"] == [target], job
        assert target.split(":")[0] in compose, f"{job}: no compose service {target}"
    for job in ("collector", "archiver", "gateway"):  # the doors with keys
        assert jobs[job]["authorization"] == {"credentials_file": SECRET}, job
    assert config["rule_files"] == ["alerts.yml"]
    [alerting] = config["alerting"]["alertmanagers"]
    assert alerting["static_configs"][0]["targets"] == ["alertmanager:9093"]
    ready = jobs["sift-ready"]["static_configs"][0]["targets"]
    for job in ("collector", "analyzer", "archiver", "gateway"):
        assert f"http://{expected[job]}/health/ready" in ready, job


def test_amtool_accepts_the_alertmanager_config() -> None:
    checked = run_tool(ops_tool("amtool"), "check-config", str(ALERTMANAGER / "alertmanager.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _render(tmp_path: Path, url: str | None) -> tuple[int, str, Path]:
    out = tmp_path / "alertmanager.yml"
    env = {key: value for key, value in os.environ.items() if key != "SIFT_ALERT_WEBHOOK_URL"}
    if url is not None:
        env["SIFT_ALERT_WEBHOOK_URL"] = url
    done = subprocess.run(
        ["sh", str(ALERTMANAGER / "render.sh"), str(ALERTMANAGER / "alertmanager.yml"), str(out)],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    return done.returncode, done.stderr, out


def test_the_operator_s_webhook_url_lands_in_the_config_verbatim(tmp_path: Path) -> None:
    url = "https://hooks.example/alerts?team=ops&token=a|b"
    status, stderr, out = _render(tmp_path, url)
    assert status == 0, stderr
    [receiver] = yaml.safe_load(out.read_text())["receivers"]
    assert receiver["webhook_configs"][0]["url"] == url
    checked = run_tool(ops_tool("amtool"), "check-config", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (None, "set SIFT_ALERT_WEBHOOK_URL"),
        ("", "set SIFT_ALERT_WEBHOOK_URL"),
        ("hooks.example/alerts", "an http:// or https:// URL"),
        ('https://hooks.example/"x', "no quotes, backslashes or spaces"),
        ("https://hooks.example/a\\b", "no quotes, backslashes or spaces"),
        ("https://hooks.example/a b", "no quotes, backslashes or spaces"),
    ],
)
def test_a_missing_or_malformed_webhook_url_stops_alertmanager(
    tmp_path: Path, url: str | None, says: str
) -> None:
    status, stderr, _ = _render(tmp_path, url)
    assert status != 0
    assert says in stderr


def test_a_missing_tool_fails_under_make_test_and_skips_for_a_developer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIFT_REQUIRE_OPS_TOOLS", "1")  # as `make test` sets it
    with pytest.raises(pytest.fail.Exception, match="make ops-tools"):
        ops_tool("promtool-not-installed")
    monkeypatch.delenv("SIFT_REQUIRE_OPS_TOOLS")
    with pytest.raises(pytest.skip.Exception, match="make ops-tools"):
        ops_tool("promtool-not-installed")


def test_the_alerts_draw_the_lines_sift_doctor_draws() -> None:
    """An operator who gets an alert and runs `sift doctor` sees the same line crossed."""
    lines = {
        "SiftGatewayErrorRateHigh": doctor.ERROR_RATE_FAIL,
        "SiftVllmKvCacheHigh": doctor.KV_CACHE_WARN,
        "SiftGpuMemoryHigh": doctor.GPU_MEMORY_WARN,
        "SiftDiskAlmostFull": doctor.DISK_WARN,
    }
    exprs = {rule["alert"]: rule["expr"] for rule in _alerts()}
    for alert, line in lines.items():
        [threshold] = re.findall(r"> (\d+(?:\.\d+)?)\s*$", exprs[alert].strip())
        assert float(threshold) == line, alert
