"""The Grafana dashboards and provisioning (deploy/grafana), and the metric names that the
alert rules and the dashboards use: every `sift_*` name must be one a Sift service registers,
so renaming a metric breaks this test instead of silently blanking a panel or an alert."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from sift_analyzer.metrics import AnalyzerMetrics
from sift_archiver.metrics import ArchiverMetrics, QueueGauges
from sift_gateway.metrics import GatewayMetrics
from tests.support.ops_tools import DEPLOY, defined_metrics, exposed_names, ops_tool, run_tool

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
SIFT_NAME = re.compile(r"\bsift_[a-z0-9_]+")


def _dashboard(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _dashboard_queries() -> list[str]:
    return [
        target["expr"]
        for path in DASHBOARDS
        for panel in _panels(_dashboard(path))
        for target in panel["targets"]
    ]


def _rule_queries() -> list[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def unknown_names(queries: list[str], exposed: set[str]) -> set[str]:
    return {name for query in queries for name in SIFT_NAME.findall(query)} - exposed


def test_every_sift_metric_the_rules_and_dashboards_use_is_registered() -> None:
    queries = _rule_queries() + _dashboard_queries()
    used = {name for query in queries for name in SIFT_NAME.findall(query)}
    assert len(used) >= 30, sorted(used)
    assert unknown_names(queries, exposed_names(defined_metrics())) == set()


def test_a_renamed_metric_is_caught() -> None:
    exposed = exposed_names(defined_metrics())
    renamed = "rate(sift_gateway_request_total[5m])"  # the counter is sift_gateway_requests
    assert unknown_names([renamed], exposed) == {"sift_gateway_request_total"}
    assert unknown_names(["sift_queue_messages"], exposed - {"sift_queue_messages"})


def test_the_parsed_definitions_match_what_the_registries_hold() -> None:
    """The parser behind the name check sees what prometheus_client registers."""
    archiver, gauges = CollectorRegistry(), QueueGauges()
    ArchiverMetrics.create(archiver)
    parsed = set(defined_metrics())
    for held in (AnalyzerMetrics().registry, GatewayMetrics().registry, archiver):
        names = {metric.name for metric in held.collect()}
        assert names, held
        assert names - parsed == set()
    assert {metric.name for metric in gauges.describe()} - parsed == set()
    kinds = defined_metrics()
    assert kinds["sift_queue_messages"] == "GaugeMetricFamily"
    assert kinds["sift_queue_message_age_seconds"] == "Histogram"
    assert kinds["sift_collector_documents"] == "Counter"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_panel_has_the_provisioned_datasource_and_a_query(path: Path) -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [provisioned] = datasource["datasources"]
    dashboard = _dashboard(path)
    assert dashboard["uid"]
    assert dashboard["title"]
    panels = _panels(dashboard)
    assert len(panels) >= 10
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": provisioned["uid"]}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == provisioned["uid"], panel["title"]


def test_the_dashboards_cover_the_pipeline_and_the_gateway() -> None:
    queries = " ".join(_dashboard_queries())
    for name in (
        "sift_queue_messages", "sift_dlq_messages", "sift_collector_documents_total",
        "sift_analyzer_analyses_total", "sift_analyzer_llm_calls_total",
        "sift_archiver_rows_written_total", "sift_gateway_requests_total",
        "sift_gateway_request_seconds_bucket", "sift_gateway_ttft_seconds_bucket",
        "sift_gateway_queue_wait_seconds_bucket", "sift_gateway_in_flight",
        "sift_gateway_breaker_open", "sift_gateway_tokens_total",
    ):  # fmt: skip
        assert name in queries, name


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query as a recording rule: promtool refuses one that does not parse."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": expr}
        for index, expr in enumerate(_dashboard_queries())
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = run_tool(ops_tool("promtool"), "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_loads_the_dashboards_from_where_compose_mounts_them() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/sift.yml").read_text())
    [sift] = provider["providers"]
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{sift['options']['path']}:ro" in volumes
