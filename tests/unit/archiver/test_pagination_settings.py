import pytest

from sift_archiver.pagination import (
    BadParameter,
    cursor_offset,
    decode_cursor,
    encode_cursor,
    to_csv,
)
from sift_archiver.settings import ArchiverSettings
from sift_common.errors import ConfigError
from sift_common.settings import load_settings


def test_cursors_round_trip_and_garbage_names_the_field() -> None:
    assert decode_cursor(encode_cursor({"offset": 20})) == {"offset": 20}
    assert cursor_offset(None) == 0
    for bad in ("%%%", encode_cursor({"offset": -1}), "bm90IGpzb24"):
        with pytest.raises(BadParameter) as refused:
            cursor_offset(bad)
        assert refused.value.field == "cursor"


def test_csv_has_a_header_and_blank_nulls() -> None:
    assert to_csv([{"a": 1, "b": None}], ["a", "b"]) == "a,b\n1,\n"


def test_settings_defaults_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ArchiverSettings()
    assert (settings.archiver_host, settings.archiver_port) == ("127.0.0.1", 8130)
    assert settings.archiver_api_keys == {"dev-key": "dev"}
    assert settings.prefetch == 2 * settings.archiver_batch_size
    monkeypatch.setenv("SIFT_ARCHIVER_CHUNK_OVERLAP_WORDS", "500")
    with pytest.raises(ConfigError, match="OVERLAP"):
        load_settings(ArchiverSettings)
    monkeypatch.delenv("SIFT_ARCHIVER_CHUNK_OVERLAP_WORDS")
    monkeypatch.setenv("SIFT_ARCHIVER_BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match="SIFT_ARCHIVER_BATCH_SIZE"):
        load_settings(ArchiverSettings)
