import json
import logging

from sift_common.logs import JsonFormatter, correlation_id


def format_record(message: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("sift.test", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    parsed: dict[str, object] = json.loads(JsonFormatter("analyzer").format(record))
    return parsed


def test_records_are_json_with_service_level_and_extras() -> None:
    entry = format_record("retry scheduled", queue="analyzer.documents")
    assert entry["message"] == "retry scheduled"
    assert entry["service"] == "analyzer"
    assert entry["level"] == "warning"
    assert entry["queue"] == "analyzer.documents"
    assert "correlation_id" not in entry


def test_the_correlation_id_of_the_current_context_is_included() -> None:
    token = correlation_id.set("doc-123")
    try:
        assert format_record("working")["correlation_id"] == "doc-123"
    finally:
        correlation_id.reset(token)
