import pytest
from pydantic import ValidationError

from sift_common.contracts import (
    EVENT_TYPES,
    Analysis,
    Document,
    DocumentAnalyzed,
    DocumentCollected,
    DocumentSubmitted,
    EntityDigested,
    EntityMention,
    EntityRef,
    EntityRefresh,
    IncomingDocument,
)


def make_document() -> Document:
    return Document.create(
        source="wire", body="Acme Corp raised guidance.", title="Acme", kind="news", external_id="7"
    )


def test_every_event_round_trips_through_json() -> None:
    document = make_document()
    acme = EntityRef(kind="company", name="Acme  Corp", ticker="ACME")
    analysis = Analysis(
        analysis_type="news",
        prompt_version="1",
        model="chat",
        score=71.5,
        result={"sentiment": "positive"},
        entities=[EntityMention(kind="company", name="Acme  Corp", ticker="ACME", score=80)],
    )
    incoming = IncomingDocument(source="wire", body="<p>Acme</p>", content_type="html")
    events = [
        DocumentSubmitted(correlation_id="submission-1", document=incoming),
        DocumentCollected(correlation_id=document.id, document=document),
        DocumentAnalyzed(correlation_id=document.id, document=document, analysis=analysis),
        EntityRefresh(correlation_id=acme.key, entity=acme, new_document_ids=[document.id]),
        EntityDigested(
            correlation_id=acme.key,
            entity=acme,
            digest_type="overview",
            prompt_version="1",
            model="chat",
            summary="Guidance raised.",
            score=70,
            document_ids=[document.id],
        ),
    ]
    assert {type(event) for event in events} == set(EVENT_TYPES)
    for event in events:
        assert type(event).model_validate_json(event.model_dump_json()) == event
        assert event.schema_version == 1


def test_routing_keys_are_distinct() -> None:
    assert len({event.ROUTING_KEY for event in EVENT_TYPES}) == len(EVENT_TYPES)


def test_document_hashes_must_match_its_content() -> None:
    document = make_document()
    tampered = document.model_dump() | {"body": "Something else entirely."}
    with pytest.raises(ValidationError, match="content_hash does not match"):
        Document.model_validate(tampered)


def test_unknown_schema_version_is_rejected_and_extra_fields_ignored() -> None:
    event = DocumentCollected(correlation_id="c", document=make_document())
    payload = event.model_dump(mode="json")
    assert DocumentCollected.model_validate(payload | {"added_later": 1}) == event
    with pytest.raises(ValidationError, match="schema_version"):
        DocumentCollected.model_validate(payload | {"schema_version": 2})


def test_entity_key_folds_case_and_spacing() -> None:
    assert EntityRef(kind="company", name=" ACME   corp").key == "company:acme corp"


def test_scores_are_bounded() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        Analysis(analysis_type="news", prompt_version="1", model="m", score=101, result={})


@pytest.mark.parametrize("number", [0, 0.0, 1_700_000_000, 1_700_000_000_000])
def test_a_date_given_as_a_number_is_refused_not_read_as_seconds_since_1970(number: float) -> None:
    with pytest.raises(ValidationError, match="ISO 8601 date-time with a time zone, not a number"):
        IncomingDocument.model_validate({"source": "wire", "body": "text", "published_at": number})
    event = DocumentCollected(correlation_id="c", document=make_document()).model_dump(mode="json")
    with pytest.raises(ValidationError, match="not a number"):
        DocumentCollected.model_validate(event | {"occurred_at": number})


def test_dates_are_read_from_iso_strings_with_a_time_zone() -> None:
    incoming = IncomingDocument.model_validate_json(
        '{"source": "wire", "body": "text", "published_at": "2026-12-06T01:00:00+01:00"}'
    )
    assert incoming.published_at is not None
    assert incoming.published_at.isoformat() == "2026-12-06T01:00:00+01:00"
    with pytest.raises(ValidationError, match="timezone"):
        IncomingDocument.model_validate({"source": "w", "body": "t", "published_at": "2026-12-06"})
