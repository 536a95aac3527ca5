import json

from sift_archiver.rows import (
    FencedOut,
    batch_rows,
    drop_fenced_out,
    keep_documents,
    normalized_name,
    outranks,
    without_nul,
)
from sift_common.contracts import DocumentAnalyzed
from tests.support.archiver import analyzed


def test_names_fold_like_entity_keys() -> None:
    assert normalized_name("  ACME   Corp ") == "acme corp"


def test_a_redelivery_inside_one_batch_is_folded() -> None:
    event = analyzed("T", "Body text here.", entities=(("company", "Acme", 70.0),))
    rows = batch_rows([event, event], words=50, overlap=5)
    assert len(rows.documents) == 1
    assert len(rows.analyses) == 1
    assert next(iter(rows.mentions.values()))[1] == 70.0
    assert len(rows.chunks) == 1


def test_entities_merge_across_documents_and_keep_a_known_ticker() -> None:
    first = analyzed("A", "One.", entities=(("company", "Acme", 10.0),))
    second = analyzed("B", "Two.", entities=(("company", "ACME", 20.0),))
    rows = batch_rows([first, second], words=50, overlap=5)
    assert list(rows.entities) == [("company", "acme")]
    assert len(rows.mentions) == 2


def test_chunks_carry_filters_and_unknown_publication_time_falls_back() -> None:
    event = analyzed("T", "Body.", source="wire", kind="review", language="de")
    (chunk,) = batch_rows([event], words=50, overlap=5).chunks
    assert (chunk.source, chunk.kind, chunk.language) == ("wire", "review", "de")
    assert chunk.published_at == event.document.published_at


def test_documents_not_stored_take_their_rows_with_them() -> None:
    kept, dropped = analyzed("A", "One."), analyzed("B", "Two.", entities=(("x", "y", 1.0),))
    rows = batch_rows([kept, dropped], words=50, overlap=5)
    vectors = keep_documents(rows, ["v1", "v2"], {kept.document.id})
    assert vectors == ["v1"]
    assert [row[0] for row in rows.documents] == [kept.document.id]
    assert rows.mentions == {}


def test_nul_characters_are_removed_from_every_text_and_json_value() -> None:
    event = analyzed("Ti\x00tle", "Bo\x00dy text.", entities=(("com\x00pany", "Ac\x00me", 5.0),))
    result = {"summary": "a\x00b", "nested": [{"k\x00ey": "v\x00"}], "n": 1}
    event = event.model_copy(
        update={"analysis": event.analysis.model_copy(update={"result": result})}
    )
    rows = batch_rows([event], words=50, overlap=5)
    assert rows.documents[0][0] == event.document.id  # the id is kept as published
    assert (rows.documents[0][5], rows.documents[0][6]) == ("Title", "Body text.")
    assert json.loads(rows.analyses[0][4]) == {"summary": "ab", "nested": [{"key": "v"}], "n": 1}
    assert rows.entities == {("company", "acme"): ("Acme", None)}
    ((mention, _),) = rows.mentions.values()
    assert (json.loads(mention)["kind"], json.loads(mention)["name"]) == ("company", "Acme")
    assert rows.chunks[0].chunk.text == "Title\n\nBody text."


def test_without_nul_leaves_other_values_alone() -> None:
    assert without_nul({"a": [1, 2.5, None, True]}) == {"a": [1, 2.5, None, True]}


def test_fencing_tokens_outrank_like_the_store() -> None:
    assert outranks(7, 5)
    assert outranks(5, 5)  # a replay
    assert outranks(3, None)  # a row written before fencing
    assert outranks(None, None)
    assert not outranks(3, 5)
    assert not outranks(None, 5)


def test_inside_a_batch_the_highest_token_is_kept_and_the_others_reported() -> None:
    def by(token: int | None, score: float, entity: str) -> DocumentAnalyzed:
        event = analyzed("T", "Same body.", score=score, entities=(("company", entity, score),))
        return event.model_copy(update={"fencing_token": token})

    events = [by(4, 44.0, "Acme"), by(9, 99.0, "Acme"), by(2, 22.0, "Globex"), by(9, 98.0, "Acme")]
    rows = batch_rows(events, words=50, overlap=5)
    ((*_, score, token),) = rows.analyses
    assert (score, token) == (98.0, 9)  # an equal token is a replay: the later one is written
    key = (events[0].document.id, "news", "v1")
    assert rows.fenced_out == [FencedOut(key, 4, 9), FencedOut(key, 2, 9)]
    assert list(rows.entities) == [("company", "acme")]  # the fenced-out Globex mention is gone


def test_a_fenced_out_analysis_takes_its_entity_links_with_it() -> None:
    stale = analyzed("A", "One.", entities=(("company", "Globex", 1.0), ("company", "Acme", 2.0)))
    fresh = analyzed("B", "Two.", entities=(("company", "Acme", 3.0),))
    rows = batch_rows([stale, fresh], words=50, overlap=5)
    drop_fenced_out(rows, [FencedOut((stale.document.id, "news", "v1"), 3, 5)])
    assert list(rows.mentions) == [(fresh.document.id, ("company", "acme"))]
    assert list(rows.entities) == [("company", "acme")]
