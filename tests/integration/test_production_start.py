"""Each service started as a process with `SIFT_ENV=production` and a development key or a
default password exits non-zero before it touches the network, naming the variable."""

import os
import subprocess
import sys

import pytest

from tests.support.security import SECURE

pytestmark = pytest.mark.integration

CASES = [
    ("sift_collector.app", "SIFT_COLLECTOR_API_KEYS", '{"dev-key": "dev"}'),
    ("sift_archiver.app", "SIFT_DATABASE_URL", "postgresql://sift:sift@127.0.0.1:1/sift"),
    ("sift_analyzer.app", "SIFT_RABBIT_URL", "amqp://guest:guest@127.0.0.1:1/"),
    ("sift_gateway", "SIFT_GATEWAY_API_KEYS", "{}"),
]


@pytest.mark.parametrize(("module", "variable", "value"), CASES, ids=[c[0] for c in CASES])
def test_a_production_service_refuses_to_start_naming_the_variable(
    module: str, variable: str, value: str
) -> None:
    env = {**os.environ, **SECURE, variable: value}
    started = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0
    assert "SIFT_ENV=production refuses" in started.stderr
    assert variable in started.stderr
