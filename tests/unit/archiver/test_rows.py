from sift_archiver.rows import batch_rows, keep_documents, normalized_name
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
