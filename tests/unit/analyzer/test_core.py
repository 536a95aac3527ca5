"""The analyzer's pure core: schema validation, repair prompt, entities, score, priority."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sift_analyzer import core
from sift_analyzer.profiles import load_profiles
from sift_analyzer.schema_model import SchemaError, model_from_schema
from sift_analyzer.settings import BUNDLED_PROFILES, AnalyzerSettings
from sift_common.contracts import Document, Priority
from sift_common.errors import ConfigError
from sift_common.settings import load_settings

PROFILES = load_profiles(BUNDLED_PROFILES)
NEWS = PROFILES.for_kind("news")
REVIEW = PROFILES.for_kind("review")
NOW = datetime(2026, 1, 10, tzinfo=UTC)

GOOD_NEWS: dict[str, Any] = {
    "sentiment": "positive",
    "impact": 70,
    "summary": "Acme beat estimates.",
    "entities": [
        {"name": "Acme Corp", "type": "company", "ticker": "ACME", "impact": 70},
        {"name": "acme  corp", "type": "company", "ticker": "", "impact": 10},
        {"name": "Globex", "type": "company", "ticker": "", "impact": 20},
    ],
}


def test_a_valid_answer_is_returned_as_a_dict() -> None:
    assert core.validate_output(NEWS, json.dumps(GOOD_NEWS), "stop") == GOOD_NEWS


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({**GOOD_NEWS, "impact": 101}), "impact"),
        (json.dumps({**GOOD_NEWS, "summary": "x" * 161}), "summary"),
        (json.dumps({**GOOD_NEWS, "sentiment": "great"}), "sentiment"),
        (json.dumps({k: v for k, v in GOOD_NEWS.items() if k != "impact"}), "impact"),
        (json.dumps({**GOOD_NEWS, "extra": 1}), "extra"),
        (json.dumps({**GOOD_NEWS, "entities": GOOD_NEWS["entities"] * 2}), "entities"),
        (json.dumps({**GOOD_NEWS, "impact": "70"}), "impact"),
    ],
)
def test_an_invalid_answer_says_what_is_wrong(answer: str, problem: str) -> None:
    with pytest.raises(core.InvalidOutputError, match=problem):
        core.validate_output(NEWS, answer, "stop")


def test_a_cut_off_answer_is_named_as_such() -> None:
    with pytest.raises(core.InvalidOutputError, match="cut off"):
        core.validate_output(NEWS, '{"sentiment": "posi', "length")


def test_entities_are_deduplicated_and_blank_tickers_unknown() -> None:
    found = core.mentions(NEWS.entities, GOOD_NEWS)
    assert [(m.name, m.kind, m.ticker, m.score) for m in found] == [
        ("Acme Corp", "company", "ACME", 70.0),
        ("Globex", "company", None, 20.0),
    ]
    assert core.overall_score(NEWS, GOOD_NEWS) == 70.0


def test_a_review_names_its_business_with_the_overall_score() -> None:
    result = {"aspects": [], "overall_score": 80, "strengths": ["food"], "business": "Luigi's"}
    [mention] = core.mentions(REVIEW.entities, result)
    assert (mention.kind, mention.name, mention.score) == ("business", "Luigi's", 80.0)
    assert core.mentions(REVIEW.entities, {**result, "business": " "}) == []
    assert core.mentions(REVIEW.entities, {**result, "business": "100"}) == []  # no letter


def test_the_repair_prompt_shows_the_answer_and_the_problem() -> None:
    original = [{"role": "user", "content": "analyse"}]
    repair = core.repair_messages(original, "{bad", "not valid JSON")
    assert repair[:1] == original
    assert repair[1] == {"role": "assistant", "content": "{bad"}
    assert "not valid JSON" in repair[2]["content"]


def test_the_prompt_carries_the_document_and_its_language() -> None:
    doc = Document.create(source="s", body="Die Aktie stieg.", title="Acme", language="de")
    messages = core.document_messages(NEWS, doc)
    assert messages[0]["role"] == "system"
    assert "Die Aktie stieg." in messages[1]["content"]
    assert "German" in messages[1]["content"]


@pytest.mark.parametrize(
    ("priority", "age_days", "expected"),
    [
        ("realtime", 0, "interactive"),
        ("normal", 1, "normal"),
        ("normal", 30, "backfill"),
        ("backfill", 0, "backfill"),
        ("realtime", 30, "interactive"),
    ],
)
def test_gateway_priority(priority: Priority, age_days: int, expected: str) -> None:
    published = NOW - timedelta(days=age_days)
    assert core.gateway_priority(priority, published, NOW, timedelta(days=7)) == expected


def test_unsupported_schema_is_refused() -> None:
    with pytest.raises(SchemaError, match="unsupported"):
        model_from_schema({"type": "object", "properties": {"x": {"type": "null"}}})


def test_a_broken_profiles_file_names_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text("documents: {}\ndigest: {}\n")
    with pytest.raises(ConfigError, match="SIFT_ANALYZER_PROFILES"):
        load_profiles(path)


def test_a_template_with_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    text = BUNDLED_PROFILES.read_text().replace("Title: {title}", "Title: {headline}", 1)
    path = tmp_path / "profiles.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="headline"):
        load_profiles(path)


def test_a_bad_retry_ladder_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_ANALYZER_RETRY_DELAYS_MS", "500,soon")
    with pytest.raises(ConfigError, match="SIFT_ANALYZER_RETRY_DELAYS_MS"):
        load_settings(AnalyzerSettings)


def test_the_retry_ladder_is_read_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_ANALYZER_RETRY_DELAYS_MS", "500,1000")
    assert load_settings(AnalyzerSettings).retry_delays == (500, 1000)
