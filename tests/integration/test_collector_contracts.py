"""The collector's published HTTP contract (docs/openapi) is what the code generates now.

The AsyncAPI documents of every service: tests/unit/test_generated_docs.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sift_collector.app import Collector
from sift_collector.contracts_export import OPENAPI_FILE, contract_settings, main, render

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_committed_contracts_are_up_to_date() -> None:
    # A fresh process with a foreign environment: the output must not depend on it.
    env = {**os.environ, "SIFT_NAMESPACE": "elsewhere.", "SIFT_COLLECTOR_MAX_BATCH": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "sift_collector.contracts_export", "--check", "--docs", str(DOCS)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"stale contracts; run `make docs`\n{result.stderr}"


def test_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--docs", str(tmp_path)]) == 0
    assert main(["--check", "--docs", str(tmp_path)]) == 0
    path = tmp_path / OPENAPI_FILE
    path.write_text(path.read_text().replace("Sift collector", "Something else"))
    assert main(["--check", "--docs", str(tmp_path)]) == 1
    assert "openapi/collector.json is stale" in capsys.readouterr().err


def test_openapi_documents_every_answer_of_the_ingest_route() -> None:
    openapi = json.loads(render(Collector(contract_settings()))[OPENAPI_FILE])
    responses = openapi["paths"]["/v1/documents"]["post"]["responses"]
    assert set(responses) == {"202", "400", "401", "403", "413", "415", "422", "429", "503"}
    for status in ("429", "503"):
        assert responses[status]["headers"]["Retry-After"]["required"] is True
    assert openapi["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
