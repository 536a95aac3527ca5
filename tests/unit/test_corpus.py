"""The bundled corpus (data/, written by scripts/make_corpus.py) read with the collector's own
parsers and normalisation: what data/MANIFEST.json promises per entry point, and which
subjects each entry point carries. tests/e2e/test_demo.py checks the same through the pipeline.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from scripts import make_corpus
from sift_collector.normalise import DocumentRejectedError, normalise
from sift_collector.sources.config import DirectorySourceConfig, FeedSourceConfig
from sift_collector.sources.directory import parse_dropped
from sift_collector.sources.feed import parse_feed
from sift_common.contracts import DocumentSubmitted, IncomingDocument

DATA = Path(__file__).resolve().parents[2] / "data"
HANGUL = re.compile("[가-힣]")


def _json(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return loaded


def _drop() -> tuple[list[IncomingDocument], dict[str, list[str]]]:
    config = DirectorySourceConfig.model_validate(
        {"name": "demo-drop", "type": "directory", "path": str(DATA / "drop")}
    )
    documents: list[IncomingDocument] = []
    problems: dict[str, list[str]] = {}
    for path in sorted((DATA / "drop").iterdir()):
        dropped = parse_dropped(path, path.read_text(encoding="utf-8"), config)
        documents += dropped.documents
        if dropped.problems:
            problems[path.name] = dropped.problems
    return documents, problems


def _feed() -> list[IncomingDocument]:
    config = FeedSourceConfig.model_validate(
        {"name": "demo-wire", "type": "rss", "url": "http://127.0.0.1/feed.xml", "kind": "news"}
    )
    documents, invalid = parse_feed((DATA / "feed.xml").read_bytes(), "application/rss+xml", config)
    assert invalid == []
    return documents


def _submitted(name: str, source: str) -> list[IncomingDocument]:
    return [
        IncomingDocument.model_validate({"source": source, **record})
        for record in _json(name)["documents"]
    ]


def entry_points() -> dict[str, list[IncomingDocument]]:
    return {
        "directory": _drop()[0],
        "feed": _feed(),
        "api": _submitted("api.json", "demo-api"),
        "amqp": _submitted("amqp.json", "demo-amqp"),
    }


def test_each_entry_point_brings_the_manifests_new_documents_and_duplicates() -> None:
    manifest = _json("MANIFEST.json")
    seen: set[str] = set()
    for point, incoming in entry_points().items():
        hashes = [normalise(document).content_hash for document in incoming]
        new = set(hashes) - seen
        assert len(new) == manifest["valid_unique"][point], point
        assert len(hashes) - len(new) == manifest["duplicates"][point], point
        seen |= new
    assert len(seen) == manifest["total_valid_unique"]
    assert sum(manifest["duplicates"].values()) == manifest["total_duplicates"]


def test_the_malformed_records_fail_as_the_manifest_says() -> None:
    manifest = _json("MANIFEST.json")
    _, problems = _drop()
    expected = manifest["malformed"]["directory"]
    assert {name: len(lines) for name, lines in problems.items()} == {
        name: len(lines) for name, lines in expected.items()
    }
    assert "body" in " ".join(problems["broken.jsonl"])
    assert "not JSON" in " ".join(problems["not-json.json"])
    assert sum(map(len, problems.values())) == manifest["total_failed_records"]

    def refused(record: dict[str, Any], source: str) -> bool:
        try:
            normalise(IncomingDocument.model_validate({"source": source, **record}))
        except (ValidationError, DocumentRejectedError):
            return True
        return False

    api_bad = _json("api.json")["malformed"]
    assert all(refused(record, "demo-api") for record in api_bad)
    assert len(api_bad) == manifest["malformed"]["api"]["refused_422"] == manifest["total_refused"]
    amqp = _json("amqp.json")
    assert all(refused(record, "demo-amqp") for record in amqp["malformed_documents"])
    for raw in amqp["malformed_raw"]:
        with pytest.raises(ValidationError):
            DocumentSubmitted.model_validate_json(raw)
    dead = len(amqp["malformed_documents"]) + len(amqp["malformed_raw"])
    assert dead == manifest["malformed"]["amqp"]["intake_dlq"] == manifest["total_dead_lettered"]


def test_subjects_come_where_the_publisher_knows_them_and_are_named_in_the_text() -> None:
    for point, incoming in entry_points().items():
        for document in incoming:
            assert document.kind in ("news", "review"), point
            if document.kind == "review":
                (subject,) = document.subjects
                assert subject.kind == "business"
            elif point in ("api", "amqp"):
                (subject,) = document.subjects
                assert subject.kind == "company"
                assert subject.ticker
            else:  # drop and feed news: the model has to find the company
                assert document.subjects == []
                continue
            assert subject.name in normalise(document).body


def test_the_corpus_is_english_and_korean_news_and_reviews() -> None:
    documents = [d for incoming in entry_points().values() for d in incoming]
    mix = {(d.kind, d.language or ("ko" if HANGUL.search(d.body) else "en")) for d in documents}
    assert mix == {("news", "en"), ("news", "ko"), ("review", "en"), ("review", "ko")}
    assert len({d.published_at.date() for d in documents if d.published_at}) > 100


def test_data_is_what_the_script_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(make_corpus, "DATA", tmp_path)
    make_corpus.main()
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(DATA) for p in DATA.rglob("*") if p.is_file())
    for path in written:
        assert (tmp_path / path).read_bytes() == (DATA / path).read_bytes(), path
