"""Feed, JSON API and drop-file parsing on canned bytes (no network, no folders but tmp)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sift_collector.sources.base import Cursor, Rejection, SourceError
from sift_collector.sources.config import (
    DirectorySourceConfig,
    FeedSourceConfig,
    JsonApiSourceConfig,
)
from sift_collector.sources.directory import DirectorySource, parse_dropped, settle
from sift_collector.sources.feed import parse_feed
from sift_collector.sources.json_api import map_item, parse_date, parse_items

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire</title>
<item><title>Acme &amp; Co beat estimates</title><link>https://wire.example/acme</link>
<guid isPermaLink="false">wire-1</guid><author>ed@wire.example (Ed)</author>
<description>&lt;p&gt;Acme &lt;b&gt;rose&lt;/b&gt; 4%.&lt;/p&gt;</description>
<pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate></item>
<item><title>Only a title</title><link>https://wire.example/title-only</link></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title><id>urn:blog</id>
<updated>2025-01-06T11:00:00Z</updated>
<entry><title>Launch</title><id>urn:blog:1</id><link href="https://blog.example/launch"/>
<updated>2025-01-06T11:00:00Z</updated><summary>Short</summary>
<content type="html">&lt;p&gt;The full launch post.&lt;/p&gt;</content></entry>
</feed>"""


def _feed(kind: str = "rss") -> FeedSourceConfig:
    return FeedSourceConfig.model_validate(
        {"name": "wire", "type": kind, "url": "https://wire.example/rss", "kind": "news"}
    )


def test_rss_entries_become_documents() -> None:
    documents, invalid = parse_feed(RSS, "application/rss+xml", _feed())
    assert invalid == []
    first, second = documents
    assert first.source == "wire"
    assert first.kind == "news"
    assert (first.external_id, first.url) == ("wire-1", "https://wire.example/acme")
    assert first.title == "Acme & Co beat estimates"
    assert (first.body, first.content_type) == ("<p>Acme <b>rose</b> 4%.</p>", "html")
    assert first.published_at == datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
    assert first.metadata == {"feed": "Wire", "author": "ed@wire.example (Ed)"}
    # No guid: the link is the id; no description: the title is the body.
    assert (second.external_id, second.body) == ("https://wire.example/title-only", "Only a title")


def test_atom_prefers_full_content_over_the_summary() -> None:
    (entry,), _ = parse_feed(ATOM, None, _feed("atom"))
    assert (entry.external_id, entry.url) == ("urn:blog:1", "https://blog.example/launch")
    assert entry.body == "<p>The full launch post.</p>"
    assert entry.published_at == datetime(2025, 1, 6, 11, 0, tzinfo=UTC)


def test_unreadable_feed_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="not a readable feed"):
        parse_feed(b"<html><body>maintenance</body>", "text/html", _feed())


def _api(**fields: object) -> JsonApiSourceConfig:
    mapping = {
        "body": "$.text",
        "title": "$.headline",
        "external_id": "$.id",
        "url": "$.links[0].href",
        "published_at": "$.date",
        "metadata": {"author": "$.by.name"},
    }
    return JsonApiSourceConfig.model_validate(
        {"name": "api", "type": "json_api", "url": "https://api.example/", "kind": "review",
         "items": "$.data[*]", "fields": mapping, **fields}
    )  # fmt: skip


def test_json_items_are_mapped_by_jsonpath() -> None:
    item = {
        "id": 42,
        "headline": "Great pasta",
        "text": "Would eat again.",
        "links": [{"href": "https://api.example/r/42"}],
        "date": "2025-01-06T09:30:00Z",
        "by": {"name": "Ann"},
    }
    document = map_item(item, _api(language="en"))
    assert (document.external_id, document.title, document.body) == (
        "42",
        "Great pasta",
        "Would eat again.",
    )
    assert document.url == "https://api.example/r/42"
    assert document.published_at == datetime(2025, 1, 6, 9, 30, tzinfo=UTC)
    assert (document.kind, document.language, document.metadata) == (
        "review",
        "en",
        {"author": "Ann"},
    )


def test_items_that_cannot_be_mapped_are_reported_not_raised() -> None:
    body = json.dumps(
        {"data": [{"id": 1, "text": "ok"}, {"id": 2}, {"id": 3, "text": {"nested": 1}}]}
    ).encode()
    documents, invalid = parse_items(body, _api())
    assert [d.external_id for d in documents] == ["1"]
    assert [(i.ref, i.reason) for i in invalid] == [
        ("item #2", "body: nothing at $.text"),
        ("item #3", "body: expected a scalar, got dict"),
    ]


def test_a_response_that_is_not_json_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="not JSON"):
        parse_items(b"<html>", _api())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-06T09:30:00+01:00", datetime(2025, 1, 6, 8, 30, tzinfo=UTC)),
        ("2025-01-06T09:30:00", datetime(2025, 1, 6, 9, 30, tzinfo=UTC)),
        ("Mon, 06 Jan 2025 09:30:00 GMT", datetime(2025, 1, 6, 9, 30, tzinfo=UTC)),
        (1736155800, datetime(2025, 1, 6, 9, 30, tzinfo=UTC)),
        (None, None),
    ],
)
def test_dates_in_common_shapes(value: object, expected: datetime | None) -> None:
    assert parse_date(value) == expected


def _drop(tmp_path: Path) -> DirectorySourceConfig:
    return DirectorySourceConfig.model_validate(
        {"name": "drops", "type": "directory", "path": str(tmp_path), "kind": "news"}
    )


def test_jsonl_records_take_the_source_defaults_and_bad_lines_are_named(tmp_path: Path) -> None:
    text = "\n".join(
        [
            json.dumps({"body": "one", "external_id": "1"}),
            "",
            "{not json",
            json.dumps({"body": "two", "source": "partner", "kind": "review"}),
            json.dumps({"title": "no body"}),
            json.dumps(["not", "an", "object"]),
        ]
    )
    dropped = parse_dropped(tmp_path / "a.jsonl", text, _drop(tmp_path))
    assert [(d.source, d.kind, d.body) for d in dropped.documents] == [
        ("drops", "news", "one"),
        ("partner", "review", "two"),
    ]
    assert [problem.split(":")[0] for problem in dropped.problems] == ["line 3", "line 5", "line 6"]
    assert "body: Field required" in dropped.problems[1]


def test_json_files_hold_one_record_or_a_list(tmp_path: Path) -> None:
    config = _drop(tmp_path)
    single = parse_dropped(tmp_path / "a.json", json.dumps({"body": "x"}), config)
    many = parse_dropped(tmp_path / "b.json", json.dumps([{"body": "x"}, {"body": "y"}]), config)
    broken = parse_dropped(tmp_path / "c.json", "[{", config)
    assert (len(single.documents), len(many.documents), len(broken.documents)) == (1, 2, 0)
    assert broken.problems[0].startswith("not JSON")


def test_settle_moves_clean_files_to_done_and_bad_ones_to_failed(tmp_path: Path) -> None:
    config = _drop(tmp_path)
    (tmp_path / "good.jsonl").write_text(json.dumps({"body": "fine"}))
    (tmp_path / "refused.jsonl").write_text(json.dumps({"body": "x", "external_id": "r1"}))
    good = parse_dropped(tmp_path / "good.jsonl", (tmp_path / "good.jsonl").read_text(), config)
    refused_path = tmp_path / "refused.jsonl"
    refused = parse_dropped(refused_path, refused_path.read_text(), config)
    rejection = Rejection(refused.documents[0], "body: too long")

    assert settle(good, {}) == tmp_path / "done" / "good.jsonl"
    target = settle(refused, {id(rejection.document): rejection.reason})
    assert target == tmp_path / "failed" / "refused.jsonl"
    assert (tmp_path / "failed" / "refused.jsonl.reason").read_text() == "r1: body: too long\n"
    assert not (tmp_path / "good.jsonl").exists()
    assert not refused_path.exists()


async def test_directory_poll_skips_hidden_and_other_files(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "b"}))
    (tmp_path / "a.json").write_text(json.dumps({"body": "a"}))
    (tmp_path / ".partial.jsonl").write_text(json.dumps({"body": "hidden"}))
    (tmp_path / "notes.txt").write_text("ignored")
    poll = await DirectorySource(_drop(tmp_path)).poll(Cursor())
    assert [d.body for d in poll.documents] == ["a", "b"]
    assert poll.after_publish is not None
    assert (tmp_path / "a.json").exists()  # nothing moves before publishing
    await poll.after_publish([])
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["a.json", "b.jsonl"]


async def test_missing_drop_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        await DirectorySource(_drop(tmp_path / "nope")).poll(Cursor())
