"""`sift doctor`'s settings: the services' development defaults, and a malformed URL named."""

import pytest

from sift_common.errors import ConfigError
from sift_common.ops.doctor_config import load_config


def test_defaults_are_the_services_own_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("SIFT_RABBIT_URL", "SIFT_NAMESPACE", "SIFT_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    config = load_config({})
    assert {t.service: t.url for t in config.services} == {
        "collector": "http://127.0.0.1:8110",
        "analyzer": "http://127.0.0.1:8120",
        "archiver": "http://127.0.0.1:8130",
        "gateway": "http://127.0.0.1:8100",
    }
    assert config.admin_key is None
    assert config.profiles_path is None
    assert config.database_url is None


def test_a_malformed_url_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="SIFT_ANALYZER_URL: expected an http"):
        load_config({"SIFT_ANALYZER_URL": "127.0.0.1:8120"})


def test_a_trailing_slash_is_dropped_and_keys_are_read() -> None:
    config = load_config({"SIFT_GATEWAY_URL": "http://gw:9/", "SIFT_GATEWAY_ADMIN_KEY": "k"})
    assert config.gateway_url == "http://gw:9"
    assert config.admin_key == "k"
