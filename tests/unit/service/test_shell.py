"""The shell's start-up: settings (incl. `SIFT_LOG_LEVEL`), logging, and the exit on bad config."""

import logging
from collections.abc import Iterator
from typing import NoReturn

import pytest

from sift_common.errors import ConfigError
from sift_common.logs import configure_logging
from sift_common.service.shell import run_service
from sift_common.settings import RabbitSettings, ServiceSettings, load_or_exit, load_settings


class Settings(ServiceSettings, RabbitSettings):
    pass


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    saved = root.handlers[:], root.level, httpx.level
    yield
    root.handlers[:], _, _ = saved
    root.setLevel(saved[1])
    httpx.setLevel(saved[2])


def test_log_level_defaults_to_info(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIFT_LOG_LEVEL", raising=False)
    assert load_settings(Settings).log_level == "INFO"


def test_log_level_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_LOG_LEVEL", " debug ")
    assert load_settings(Settings).log_level == "DEBUG"


def test_an_unknown_log_level_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="SIFT_LOG_LEVEL"):
        load_settings(Settings)


def test_bad_settings_exit_with_the_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_LOG_LEVEL", "loud")
    with pytest.raises(SystemExit, match=r"^sift-collector: invalid settings: SIFT_LOG_LEVEL"):
        load_or_exit("collector", Settings)


def test_a_config_error_while_building_exits_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_LOG_LEVEL", "warning")

    def build(settings: Settings) -> NoReturn:
        assert logging.getLogger().level == logging.WARNING  # logging is set up first
        raise ConfigError("SIFT_COLLECTOR_RATE_LIMIT: not a rate")

    with pytest.raises(
        SystemExit, match=r"^sift-collector: SIFT_COLLECTOR_RATE_LIMIT: not a rate$"
    ):
        run_service("collector", Settings, build)


@pytest.mark.parametrize(
    ("level", "root", "httpx"),
    [("INFO", logging.INFO, logging.WARNING), ("DEBUG", logging.DEBUG, logging.NOTSET)],
)
def test_logging_takes_the_level_by_name(level: str, root: int, httpx: int) -> None:
    configure_logging("analyzer", level)
    assert logging.getLogger().level == root
    assert logging.getLogger("httpx").level == httpx  # a line per request only when debugging
