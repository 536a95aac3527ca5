"""Digest grounding: content overlap (English and Korean), the held score, the prompt that
shows each document's score and the mean, and the grounding check as invalid output."""

import json

import pytest

from sift_analyzer import core, digest_prompt, grounding
from sift_analyzer.digest_store import ContextDocument
from sift_analyzer.profiles import load_profiles
from sift_analyzer.settings import BUNDLED_PROFILES
from sift_common.contracts import EntityRef

DIGEST = load_profiles(BUNDLED_PROFILES).digest
ACME = EntityRef(kind="company", name="Acme Corp", ticker="ACME")
DOCS = [
    ContextDocument("a" * 64, "Acme beats estimates", "Acme reported record revenue.", 0.1, 80.0),
    ContextDocument(
        "b" * 64, "Acme faces probe", "Regulators opened an inquiry.", 0.2, 30.0, "Acme probed."
    ),
    ContextDocument("c" * 64, None, "Acme hired 500 workers in Ohio.", 0.3, None),
]


def test_tokens_are_words_numbers_and_hangul_bigrams() -> None:
    assert grounding.tokens("Acme's revenue rose 8% to $1,200 million") >= {
        "acme",
        "revenue",
        "rose",
        "8",
        "1200",
        "million",
    }
    assert "the" not in grounding.tokens("the news is positive overall")
    # Korean attaches particles to words: bigrams still match 삼성전자가 with 삼성전자는.
    assert grounding.tokens("삼성전자가") & grounding.tokens("삼성전자는 실적을")
    assert not grounding.tokens("있다")  # an ending, not content


@pytest.mark.parametrize(
    ("summary", "grounded"),
    [
        ("Acme Corp beat estimates with record revenue but faces a pricing probe.", True),
        ("Acme hired 500 workers.", True),  # a number from the documents
        ("Acme Corp launched a rocket to Mars.", False),  # nothing from the documents
        ("Overall the news about Acme Corp is positive.", False),  # talk, no fact
        ("ACME, Acme Corp.", False),  # the entity's name alone
    ],
)
def test_a_summary_must_share_content_beyond_the_entity_name(summary: str, grounded: bool) -> None:
    check = digest_prompt.summary_check(DIGEST, ACME, DOCS)
    assert (check(summary) is None) is grounded


def test_korean_summaries_are_checked_by_bigrams() -> None:
    samsung = EntityRef(kind="company", name="삼성전자")
    body = "삼성전자가 반도체 판매 호조로 영업이익이 늘었다."
    docs = [ContextDocument("d" * 64, "삼성전자 실적 발표", body, 0.1, 75)]
    check = digest_prompt.summary_check(DIGEST, samsung, docs)
    assert check("삼성전자는 반도체 호조로 영업이익이 증가했다.") is None
    assert check("삼성전자는 새로운 스마트폰을 공개했다.") is not None
    assert check("삼성전자에 대한 소식은 긍정적이다.") is not None  # about the analysis only


def test_a_summary_repeating_the_worked_example_is_refused() -> None:
    samsung = EntityRef(kind="company", name="삼성전자")
    body = "삼성전자는 반도체 판매 호조로 3분기 영업이익이 크게 늘었다."
    check = digest_prompt.summary_check(
        DIGEST, samsung, [ContextDocument("e" * 64, None, body, 0, 80)]
    )
    assert DIGEST.examples  # the bundled profile shows one per language
    copied = "삼성전자는 2분기 영업이익이 40% 늘었지만 배터리 결함으로 노트북 2만 대를 리콜한다."
    assert check(copied) == (
        "the summary repeats the worked example, not these documents: summarise them"
    )
    assert check("삼성전자는 반도체 호조로 3분기 영업이익이 크게 늘었다.") is None


def test_the_prompt_starts_with_the_worked_example_in_the_documents_language() -> None:
    korean = [ContextDocument("f" * 64, None, "삼성전자 실적 발표", 0, 80, None, "ko")]
    messages = digest_prompt.digest_messages(DIGEST, ACME, korean)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "한빛전자" in messages[1]["content"]
    assert json.loads(messages[2]["content"])["summary"].startswith("한빛전자")
    english = digest_prompt.digest_messages(DIGEST, ACME, DOCS)  # no language: English
    assert "Globex" in english[1]["content"]


def test_the_score_is_held_within_the_distance_of_the_mean() -> None:
    assert grounding.held_score(90, 55.0, 15) == 70
    assert grounding.held_score(20, 55.0, 15) == 40
    assert grounding.held_score(60, 55.0, 15) == 60
    assert grounding.held_score(100, 95.0, 15) == 100  # and within 0-100
    assert grounding.held_score(5, None, 15) == 5  # nothing scored: nothing to hold it to


def test_the_prompt_shows_each_score_the_mean_and_summaries_or_openings() -> None:
    messages = digest_prompt.digest_messages(DIGEST, ACME, DOCS)
    prompt = messages[-1]["content"]
    assert "Acme Corp (company, ACME)" in prompt
    assert "1. [score 80] Acme beats estimates — Acme reported record revenue." in prompt
    assert "2. [score 30] Acme faces probe — Acme probed." in prompt
    assert "Regulators opened an inquiry" not in prompt  # the summary stands in for the body
    assert "3. [score none] Acme hired 500 workers in Ohio." in prompt
    assert "Mean score of these documents: 55 (2 of 3 scored)" in prompt
    assert "0 = very bad" in prompt
    assert "50 = neutral" in prompt
    assert "100 = very good" in prompt
    assert digest_prompt.mean_score(DOCS) == 55.0
    assert digest_prompt.mean_score([DOCS[2]]) is None


def answer(summary: str, score: int = 60) -> str:
    return json.dumps({"summary": summary, "score": score, "strengths": [], "risks": []})


def test_an_ungrounded_summary_is_invalid_output_so_it_gets_the_repair_turn() -> None:
    check = digest_prompt.answer_check(DIGEST, ACME, DOCS)
    good = core.validate_output(
        DIGEST, answer("Acme beat estimates; regulators probe it."), "x", check
    )
    assert good["summary"].startswith("Acme beat")
    with pytest.raises(core.InvalidOutputError, match="shares no word"):
        core.validate_output(DIGEST, answer("Acme Corp launched a rocket."), "stop", check)
    # Without the check the schema alone decides.
    core.validate_output(DIGEST, answer("Acme Corp launched a rocket."), "stop")


def test_details_keep_the_answer_and_the_grounding_record() -> None:
    result = {"summary": "s", "score": 90, "strengths": ["x"], "risks": []}
    record = {"grounding": {"model_score": 90, "documents_mean_score": 55.0}}
    details = digest_prompt.answer_details(DIGEST, result, record)
    assert details == {"strengths": ["x"], "risks": [], **record}
