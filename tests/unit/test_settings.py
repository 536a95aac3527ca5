import pytest

from sift_common.errors import ConfigError
from sift_common.settings import (
    DatabaseSettings,
    GatewaySettings,
    RabbitSettings,
    RedisSettings,
    load_settings,
)


class ServiceSettings(RabbitSettings, RedisSettings, DatabaseSettings, GatewaySettings):
    pass


def test_defaults_point_at_local_services(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIFT_RABBIT_URL", "SIFT_REDIS_URL", "SIFT_DATABASE_URL", "SIFT_GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(ServiceSettings)
    assert str(settings.rabbit_url).startswith("amqp://guest:guest@127.0.0.1:5672")
    assert str(settings.redis_url).startswith("redis://127.0.0.1:6379")
    assert settings.database_url is None  # the embedded PostgreSQL
    assert str(settings.gateway_url).startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SIFT_RABBIT_URL", "http://not-amqp"),
        ("SIFT_REDIS_URL", "amqp://wrong-scheme"),
        ("SIFT_DATABASE_URL", "mysql://root@db/sift"),
        ("SIFT_DATABASE_URL", "not a url"),
        ("SIFT_GATEWAY_URL", "::::"),
        ("SIFT_NAMESPACE", "Has Spaces"),
    ],
)
def test_a_wrong_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings(ServiceSettings)


def test_unix_socket_database_urls_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+asyncpg://postgres@/postgres?host=/run/pg"
    monkeypatch.setenv("SIFT_DATABASE_URL", url)
    assert load_settings(DatabaseSettings).database_url == url
