"""The analyzer's pure core: schema validation, repair prompt, entities, score, priority."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sift_analyzer import core
from sift_analyzer.evaluation.cli import with_examples
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
EXAMPLES = Path(__file__).resolve().parents[3] / "eval" / "profiles" / "examples.yaml"

GOOD_NEWS: dict[str, Any] = {
    "summary": "Acme beat estimates.",
    "sentiment": "positive",
    "effect": "good",
    "companies": [
        {"name": "Acme Corp", "ticker": "ACME"},
        {"name": "acme  corp", "ticker": ""},
        {"name": "Globex", "ticker": ""},
    ],
}


def test_a_valid_answer_is_returned_as_a_dict() -> None:
    assert core.validate_output(NEWS, json.dumps(GOOD_NEWS), "stop") == GOOD_NEWS


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({**GOOD_NEWS, "effect": "splendid"}), "effect"),
        (json.dumps({**GOOD_NEWS, "summary": "x" * 161}), "summary"),
        (json.dumps({**GOOD_NEWS, "sentiment": "great"}), "sentiment"),
        (json.dumps({k: v for k, v in GOOD_NEWS.items() if k != "effect"}), "effect"),
        (json.dumps({**GOOD_NEWS, "extra": 1}), "extra"),
        (json.dumps({**GOOD_NEWS, "companies": GOOD_NEWS["companies"] * 2}), "companies"),
        (json.dumps({**GOOD_NEWS, "effect": 70}), "effect"),
        (
            json.dumps({**GOOD_NEWS, "companies": [{"name": "Acme: shares up", "ticker": ""}]}),
            "name",
        ),
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
    assert [(m.name, m.kind, m.ticker) for m in found] == [
        ("Acme Corp", "company", "ACME"),
        ("Globex", "company", None),
    ]


@pytest.mark.parametrize(
    ("effect", "score"),
    [("very_bad", 5), ("bad", 20), ("slightly_bad", 35), ("none", 50), ("good", 80)],
)
def test_the_news_score_is_directional_from_the_rubric_label(effect: str, score: float) -> None:
    assert core.overall_score(NEWS, {**GOOD_NEWS, "effect": effect}) == score


def test_a_review_score_is_the_reviewers_satisfaction() -> None:
    scores = {label: core.overall_score(REVIEW, {"satisfaction": label}) for label in (
        "very_dissatisfied", "dissatisfied", "mixed", "satisfied", "very_satisfied"
    )}  # fmt: skip
    assert list(scores.values()) == sorted(scores.values())
    assert scores["mixed"] == 50


def edited(source: Path, tmp_path: Path, old: str, new: str) -> Path:
    """A copy of a profiles or examples file with one edit."""
    path = tmp_path / source.name
    path.write_text(source.read_text().replace(old, new, 1))
    return path


def test_a_score_map_must_cover_the_enum_exactly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="score_map"):
        load_profiles(edited(BUNDLED_PROFILES, tmp_path, "      very_good: 95\n", ""))


def test_an_example_that_breaks_the_schema_is_refused(tmp_path: Path) -> None:
    path = edited(EXAMPLES, tmp_path, "effect: bad\n", "effect: awful\n")
    with pytest.raises(ValueError, match="example 1 does not match"):
        with_examples(PROFILES, path)


def test_a_review_names_its_business() -> None:
    result = {"satisfaction": "satisfied", "business": "Luigi's"}
    [mention] = core.mentions(REVIEW.entities, result)
    assert (mention.kind, mention.name) == ("business", "Luigi's")
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
    assert "Die Aktie stieg." in messages[-1]["content"]
    assert "German" in messages[-1]["content"]


def test_korean_documents_get_korean_examples_and_are_named_korean() -> None:
    news = with_examples(PROFILES, EXAMPLES).for_kind("news")
    doc = Document.create(source="s", body="삼성전자 주가가 올랐다.", language="ko")
    messages = core.document_messages(news, doc)
    assert "Korean" in messages[-1]["content"]
    shown = [m["content"] for m in messages[1:-1] if m["role"] == "user"]
    assert shown
    assert all(any("\uac00" <= c <= "\ud7a3" for c in text) for text in shown)
    answers = [json.loads(m["content"]) for m in messages if m["role"] == "assistant"]
    assert all(core.validate_output(news, json.dumps(a), "stop") == a for a in answers)


def test_a_language_without_examples_gets_the_english_ones() -> None:
    news = with_examples(PROFILES, EXAMPLES).for_kind("news")
    doc = Document.create(source="s", body="Die Aktie stieg.", language="de")
    users = [m["content"] for m in core.document_messages(news, doc) if m["role"] == "user"]
    english = [e for e in news.examples if e.language == "en"]
    assert english
    assert len(users) == 1 + len(english)


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


@pytest.mark.parametrize("pattern", ["^[^\\n]{1,129}$", "^[a-z]{200}$", "^x{0,10}y{5,300}$"])
def test_a_pattern_repeating_past_xgrammars_limit_is_refused(pattern: str) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}
    with pytest.raises(SchemaError, match="xgrammar fails above 128"):
        model_from_schema(schema)


def test_a_pattern_split_below_xgrammars_limit_is_accepted() -> None:
    pattern = "^[^\\n]{1,128}[^\\n]{0,32}$"
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}
    model = model_from_schema(schema)
    assert model.model_validate({"s": "x" * 160}).model_dump() == {"s": "x" * 160}
    with pytest.raises(ValidationError, match="pattern"):
        model.model_validate({"s": "x" * 161})


def test_a_broken_profiles_file_names_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text("documents: {}\ndigest: {}\n")
    with pytest.raises(ConfigError, match="SIFT_ANALYZER_PROFILES"):
        load_profiles(path)


def test_a_template_with_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    path = edited(BUNDLED_PROFILES, tmp_path, "Title: {title}", "Title: {headline}")
    with pytest.raises(ConfigError, match="headline"):
        load_profiles(path)


def test_a_bad_retry_ladder_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_ANALYZER_RETRY_DELAYS_MS", "500,soon")
    with pytest.raises(ConfigError, match="SIFT_ANALYZER_RETRY_DELAYS_MS"):
        load_settings(AnalyzerSettings)


def test_the_retry_ladder_is_read_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIFT_ANALYZER_RETRY_DELAYS_MS", "500,1000")
    assert load_settings(AnalyzerSettings).retry_delays == (500, 1000)


def test_korean_bodies_are_clipped_to_a_token_budget_english_ones_much_later() -> None:
    korean, english = "삼성전자 주가가 올랐다. " * 200, "Acme shares rose today. " * 200
    assert len(core.clip_to_tokens(korean, 640)) < 400
    assert 1800 < len(core.clip_to_tokens(english, 640)) < 2400
    assert core.clip_to_tokens("short", 640) == "short"
