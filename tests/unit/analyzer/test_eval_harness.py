"""`sift eval`'s harness without a model: the labelled set is complete and consistent, and the
metrics count what they say (hand-made records with known answers)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from sift_analyzer.entities import canonical, load_known_entities
from sift_analyzer.evaluation import report, scoring
from sift_analyzer.evaluation.dataset import EvalSetError, Query, load_eval_set
from sift_analyzer.evaluation.scoring import DocRecord
from sift_analyzer.evaluation.search import subjects_stored
from sift_common.contracts import EntityMention

EVAL = Path(__file__).resolve().parents[3] / "eval"
SET = load_eval_set(EVAL)
KNOWN = load_known_entities()


def test_the_labelled_set_covers_both_languages_and_kinds() -> None:
    slices = Counter(f"{d.language}-{d.kind}" for d in SET.documents)
    assert len(SET.documents) >= 200
    assert set(slices) == {"en-news", "ko-news", "en-review", "ko-review"}
    assert min(slices.values()) >= 45
    assert {d.labels.direction for d in SET.documents} == {"up", "down", "flat"}
    assert sum(bool(d.subjects) for d in SET.documents) >= 100
    assert sum(not d.subjects for d in SET.documents) >= 50  # the model must find these


def test_queries_include_korean_and_cross_language_pairs() -> None:
    languages = {d.id: d.language for d in SET.documents}
    groups = Counter(
        q.language if languages[q.relevant[0]] == q.language else "cross" for q in SET.queries
    )
    assert groups["en"] >= 40
    assert groups["ko"] >= 40
    assert groups["cross"] >= 20


def test_every_labelled_company_has_a_ticker_the_alias_table_knows() -> None:
    unknown = {
        (e.name, e.ticker)
        for d in SET.documents
        for e in d.labels.entities
        if e.kind == "company" and KNOWN.find(e.name, e.ticker) is None
    }
    assert not unknown


def test_a_broken_line_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "documents").mkdir()
    (tmp_path / "queries").mkdir()
    (tmp_path / "documents" / "en-news.jsonl").write_text('{"id": "en-news-001"}\n')
    with pytest.raises(EvalSetError, match=r"en-news\.jsonl:1"):
        load_eval_set(tmp_path)


def record(
    doc_id: str, *, score: float | None, sentiment: str | None, names: list[str]
) -> DocRecord:
    doc = SET.by_id()[doc_id]
    valid = score is not None
    entities = [EntityMention(kind="company", name=name) for name in names]
    return DocRecord(doc, valid, valid, 1, 100, 50, 1.0, sentiment, score, entities, entities)


def test_metrics_count_right_and_wrong_answers() -> None:
    up = next(d for d in SET.documents if d.labels.direction == "up" and d.kind == "news")
    down = next(d for d in SET.documents if d.labels.direction == "down" and d.kind == "news")
    gold_up = up.labels.entities[0].name
    records = [
        record(up.id, score=80, sentiment=up.labels.sentiment, names=[gold_up, "Invented Co"]),
        record(
            down.id,
            score=80,
            sentiment="mixed" if down.labels.sentiment != "mixed" else "positive",
            names=[],
        ),
        record(up.id, score=None, sentiment=None, names=[]),  # failed: wrong on every label
    ]
    metrics = scoring.analysis_metrics(KNOWN, records)
    assert metrics["direction_agreement"] == pytest.approx(1 / 3, abs=1e-3)
    assert metrics["sentiment_accuracy"] == pytest.approx(1 / 3, abs=1e-3)
    assert metrics["entity_precision"] == 0.5  # one right, one invented
    assert metrics["schema_valid_after_repair"] == pytest.approx(2 / 3, abs=1e-3)
    assert metrics["failed"] == [up.id]


def test_a_merely_mentioned_entity_is_neither_right_nor_wrong() -> None:
    doc = next(d for d in SET.documents if d.labels.also_mentioned)
    aside = doc.labels.also_mentioned[0]
    counted = scoring.entity_counts(
        KNOWN, record(doc.id, score=50, sentiment="neutral", names=[]),
        [EntityMention(kind=aside.kind, name=aside.name)],
    )  # fmt: skip
    assert counted[:2] == (0, 0)


def test_direction_bands_and_macro_f1() -> None:
    assert [scoring.direction(s) for s in (None, 5, 45, 50, 55, 95)] == [
        None, "down", "down", "flat", "up", "up"
    ]  # fmt: skip
    assert scoring.macro_f1(["a", "b"], ["a", "b"]) == 1.0
    assert scoring.macro_f1(["a", "b"], ["a", "a"]) == pytest.approx((2 / 3 + 0) / 2)


def test_search_hits_split_same_language_from_cross_language() -> None:
    en = next(d for d in SET.documents if d.language == "en")
    queries = [
        Query(id="q1", language="en", query="x", relevant=[en.id]),
        Query(id="q2", language="ko", query="y", relevant=[en.id]),
    ]
    ranked = {"q1": [en.id], "q2": ["other", "other2", en.id]}
    found = scoring.search_metrics(queries, ranked, {en.id: "en"})
    assert found["en"]["hit@1"] == 1.0
    assert (found["cross:ko"]["hit@1"], found["cross:ko"]["hit@3"]) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("marker", "saved"), [("eval", "eval.json"), ("embeddings", "eval-embeddings.json")]
)
def test_the_quality_docs_show_the_saved_runs(marker: str, saved: str) -> None:
    root = EVAL.parent
    doc = (root / "docs" / "quality.md").read_text()
    shown = doc.split(f"<!-- {marker}:begin -->\n")[1].split(f"\n<!-- {marker}:end -->")[0]
    result = json.loads((root / "bench" / "results" / saved).read_text())
    assert shown.strip() == report.markdown(result).strip()


def test_stored_subjects_are_found_by_the_stores_entity_key() -> None:
    doc = next(d for d in SET.documents if d.language == "ko" and d.kind == "news" and d.subjects)
    resolved = [canonical(KNOWN, s, None) for s in doc.subjects]
    stored = {"entities": [{"entity_key": f"{r.kind}:{r.name.casefold()}"} for r in resolved]}
    assert subjects_stored(doc, stored, KNOWN) == (len(doc.subjects), len(doc.subjects))
    assert subjects_stored(doc, {"entities": []}, KNOWN) == (len(doc.subjects), 0)
