import csv
import io
from datetime import UTC, datetime

import pytest

from sift_archiver.pagination import (
    MAX_OFFSET,
    BadParameter,
    cursor_after,
    cursor_offset,
    decode_cursor,
    encode_cursor,
    next_offset_cursor,
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


def test_tampered_cursors_are_refused_and_offsets_bounded() -> None:
    tampered = [
        encode_cursor({"offset": MAX_OFFSET + 1}),
        encode_cursor({"offset": 1.5}),
        encode_cursor({"offset": False}),
        encode_cursor({"offset": 10, "limit": 1000}),
        encode_cursor({"after": "2026-01-01"}),
    ]
    for bad in tampered:
        with pytest.raises(BadParameter) as refused:
            cursor_offset(bad)
        assert refused.value.field == "cursor"
    assert cursor_offset(encode_cursor({"offset": MAX_OFFSET})) == MAX_OFFSET
    with pytest.raises(BadParameter, match="end at offset 100"):
        cursor_offset(encode_cursor({"offset": 150}), maximum=100)
    assert next_offset_cursor(90, 10, more=True, maximum=100) == encode_cursor({"offset": 100})
    assert next_offset_cursor(95, 10, more=True, maximum=100) is None, "no cursor past the bound"
    assert next_offset_cursor(0, 10, more=False) is None


def test_time_cursors_hold_an_iso_time_and_nothing_else() -> None:
    moment = datetime(2026, 11, 2, 6, tzinfo=UTC)
    assert cursor_after(encode_cursor({"after": moment})) == moment
    assert cursor_after(encode_cursor({"after": "2026-11-02T06:00:00"})) == moment  # UTC
    assert cursor_after(None) is None
    for bad in ({"after": "yesterday"}, {"after": 1}, {"offset": 3}, {"after": None, "x": 1}):
        with pytest.raises(BadParameter) as refused:
            cursor_after(encode_cursor(bad))
        assert refused.value.field == "cursor"


def test_csv_has_a_header_and_blank_nulls() -> None:
    assert to_csv([{"a": 1, "b": None}], ["a", "b"]) == "a,b\r\n1,\r\n"


@pytest.mark.parametrize("text", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cells_that_would_run_as_formulas_are_quoted(text: str) -> None:
    exported = to_csv([{"name": text, "score": -3.5}], ["name", "score"])
    [row] = list(csv.reader(io.StringIO(exported, newline="")))[1:]
    assert row == [f"'{text}", "-3.5"], "text escaped; a negative number stays a number"


def test_csv_leaves_ordinary_text_alone() -> None:
    assert to_csv([{"name": "Acme = best"}], ["name"]) == "name\r\nAcme = best\r\n"


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
