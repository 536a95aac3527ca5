"""The passwords provisioning gives each service's user: a JSON file, or a variable each."""

from pathlib import Path

import pytest

from sift_common.errors import ConfigError
from sift_common.security.passwords import read_passwords

SERVICES = ["collector", "analyzer"]


def test_from_variables_leaving_out_the_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_X_PASSWORD_COLLECTOR", "c")
    monkeypatch.setenv("SIFT_X_PASSWORD_ANALYZER", "")
    assert read_passwords(SERVICES, "SIFT_X_PASSWORD_{}", None) == {"collector": "c"}


def test_from_a_file_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_X_PASSWORD_COLLECTOR", "ignored")
    path = tmp_path / "passwords.json"
    path.write_text('{"analyzer": "a", "stranger": "s"}')
    assert read_passwords(SERVICES, "SIFT_X_PASSWORD_{}", path) == {"analyzer": "a"}


@pytest.mark.parametrize("text", ["not json", '["a"]', '{"collector": 1}'])
def test_a_malformed_file_names_itself(tmp_path: Path, text: str) -> None:
    path = tmp_path / "passwords.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"passwords\.json"):
        read_passwords(SERVICES, "SIFT_X_PASSWORD_{}", path)
