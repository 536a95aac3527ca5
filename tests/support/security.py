"""For the security tests: settings a production deployment could start with (every key long,
every password its own; tests change one variable to a development default and expect the
start-up to be refused), and key files rewritten as an operator rotating keys would."""

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

STRONG = "s" * 40
GATEWAY_STRONG = json.dumps({STRONG: "analyzer", "a" * 40: {"name": "ops", "scopes": ["admin"]}})
SECURE = {
    "SIFT_ENV": "production",
    "SIFT_RABBIT_URL": "amqp://collector:Qx7-long-secret@rabbit:5672/",
    "SIFT_REDIS_URL": "redis://collector:Qx7-long-secret@redis:6379/0",
    "SIFT_DATABASE_URL": "postgresql://archiver:Qx7-long-secret@db/sift",
    "SIFT_GATEWAY_API_KEY": STRONG,
    "SIFT_COLLECTOR_API_KEYS": json.dumps({STRONG: "publisher"}),
    "SIFT_ARCHIVER_API_KEYS": json.dumps({STRONG: "analyst"}),
    "SIFT_GATEWAY_API_KEYS": GATEWAY_STRONG,
}


def key_entry(key: str) -> str:
    """A key file's entry for `key` that holds nothing secret: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def write_key_file(path: Path, table: dict[str, Any], mtime_s: int) -> None:
    """Write a key table with a given mtime, so a rewrite within one clock tick still shows."""
    path.write_text(json.dumps(table))
    os.utime(path, (mtime_s, mtime_s))


def auth_failures(metrics_text: str, reason: str) -> float:
    """`sift_auth_failures_total{reason}` in a service's /metrics text (0 when absent)."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "sift_auth_failures_total" and sample.labels["reason"] == reason:
                return float(sample.value)
    return 0.0


def assert_refused(response: httpx.Response, status: int, kind: str) -> None:
    """A refusal in the collector's and archiver's envelope, of the given type."""
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == kind
