"""`SIFT_ENV=production` refuses development defaults at settings validation, naming the
variable: the development key, short keys, default passwords, a gateway without keys, and a
service without a key for the gateway. Development keeps working with the defaults."""

import json
from pathlib import Path

import pytest

from sift_analyzer.settings import AnalyzerSettings
from sift_archiver.settings import ArchiverSettings
from sift_collector.settings import CollectorSettings
from sift_common.errors import ConfigError
from sift_common.settings import AuthSettings, ServiceSettings, load_settings
from sift_gateway.settings import GatewayServiceSettings
from tests.support.security import SECURE, STRONG, key_entry

SERVICES: list[type[ServiceSettings]] = [
    CollectorSettings,
    ArchiverSettings,
    AnalyzerSettings,
    GatewayServiceSettings,
]


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in SECURE.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.__name__)
def test_production_starts_with_strong_settings(
    production: pytest.MonkeyPatch, service: type[ServiceSettings]
) -> None:
    assert load_settings(service).env == "production"


REFUSED = [
    (CollectorSettings, "SIFT_COLLECTOR_API_KEYS", '{"dev-key": "dev"}', "development key"),
    (CollectorSettings, "SIFT_COLLECTOR_API_KEYS", '{"short-key": "p"}', "fewer than 32"),
    (ArchiverSettings, "SIFT_ARCHIVER_API_KEYS", '{"dev-key": "dev"}', "development key"),
    (GatewayServiceSettings, "SIFT_GATEWAY_API_KEYS", "{}", "no API key"),
    (GatewayServiceSettings, "SIFT_GATEWAY_API_KEYS", '{"tiny": "x"}', "fewer than 32"),
    (CollectorSettings, "SIFT_RABBIT_URL", "amqp://guest:guest@rabbit:5672/", "'guest'"),
    (AnalyzerSettings, "SIFT_RABBIT_URL", "amqp://rabbit:5672/", "guest/guest"),
    (ArchiverSettings, "SIFT_DATABASE_URL", "postgresql://sift:sift@db/sift", "'sift'"),
    (GatewayServiceSettings, "SIFT_DATABASE_URL", "postgresql://sift:sift@db/sift", "'sift'"),
    (AnalyzerSettings, "SIFT_REDIS_URL", "redis://:sift@redis:6379/0", "'sift'"),
    (AnalyzerSettings, "SIFT_GATEWAY_API_KEY", "dev-key", "development or short"),
    (ArchiverSettings, "SIFT_GATEWAY_API_KEY", "", "no key"),
]


@pytest.mark.parametrize(("service", "variable", "value", "why"), REFUSED)
def test_production_refuses_development_defaults_naming_the_variable(
    production: pytest.MonkeyPatch,
    service: type[ServiceSettings],
    variable: str,
    value: str,
    why: str,
) -> None:
    production.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable) as refused:
        load_settings(service)
    assert why in str(refused.value)
    production.setenv("SIFT_ENV", "development")  # the same settings start on a laptop
    assert load_settings(service).env == "development"


def test_production_unset_keys_are_the_development_default_and_refused(
    production: pytest.MonkeyPatch,
) -> None:
    production.delenv("SIFT_COLLECTOR_API_KEYS")
    with pytest.raises(ConfigError, match="SIFT_COLLECTOR_API_KEYS: the development key"):
        load_settings(CollectorSettings)


def test_a_key_file_replaces_the_default_and_is_checked_too(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production.delenv("SIFT_ARCHIVER_API_KEYS")
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({key_entry(STRONG): "analyst"}))
    production.setenv("SIFT_ARCHIVER_API_KEYS_FILE", str(path))
    assert load_settings(ArchiverSettings).api_keys.ring().identify(STRONG) is not None
    path.write_text(json.dumps({"weak": "analyst"}))
    with pytest.raises(ConfigError, match="SIFT_ARCHIVER_API_KEYS_FILE"):
        load_settings(ArchiverSettings)


def test_a_gateway_key_with_an_unknown_priority_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "SIFT_GATEWAY_API_KEYS", json.dumps({STRONG: {"name": "x", "priority": "urgent"}})
    )
    with pytest.raises(ConfigError, match=r"SIFT_GATEWAY_API_KEYS.*urgent"):
        load_settings(GatewayServiceSettings)


def test_a_malformed_key_table_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_COLLECTOR_API_KEYS", '{"sha256:abc": "publisher"}')
    with pytest.raises(ConfigError, match=r"^invalid settings: SIFT_COLLECTOR_API_KEYS: sha256:"):
        load_settings(CollectorSettings)


DOORS: list[type[AuthSettings]] = [CollectorSettings, ArchiverSettings, GatewayServiceSettings]


@pytest.mark.parametrize("service", DOORS, ids=lambda s: s.__name__)
def test_metrics_are_closed_in_production_open_in_development_and_either_on_request(
    production: pytest.MonkeyPatch, service: type[AuthSettings], caplog: pytest.LogCaptureFixture
) -> None:
    assert load_settings(service).metrics_need_key
    production.setenv("SIFT_OPEN_METRICS", "true")
    assert not load_settings(service).metrics_need_key
    assert "SIFT_OPEN_METRICS=true" in caplog.text  # production warns about an open /metrics
    production.setenv("SIFT_ENV", "development")
    production.delenv("SIFT_OPEN_METRICS")
    assert not load_settings(service).metrics_need_key
    production.setenv("SIFT_OPEN_METRICS", "false")
    assert load_settings(service).metrics_need_key
