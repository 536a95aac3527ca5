"""The sources YAML: tiers become intervals, env expansion, and errors that name the source."""

from pathlib import Path

import pytest
import yaml

from sift_collector.sources.config import (
    DirectorySourceConfig,
    FeedSourceConfig,
    JsonApiSourceConfig,
    SourcesConfigError,
    expand_env,
    load_sources,
    parse_sources,
)

VALID = """
tiers: {hot: 30}
sources:
  - {name: wire, type: rss, url: "${WIRE_URL:-https://wire.example/rss}", tier: hot, kind: news}
  - {name: blog, type: atom, url: https://blog.example/atom, tier: cold, jitter: 0}
  - name: reviews
    type: json_api
    url: https://api.example/reviews
    items: $.data[*]
    headers: {Authorization: "Bearer ${API_TOKEN:-none}"}
    fields: {body: $.text, title: $.headline, external_id: $.id, metadata: {author: $.by.name}}
  - {name: drops, type: directory, path: /tmp/drops, interval_s: 5}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


def test_a_valid_file_loads_with_effective_intervals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIRE_URL", "https://other.example/feed.xml")
    monkeypatch.delenv("API_TOKEN", raising=False)
    wire, blog, reviews, drops = load_sources(_write(tmp_path, VALID))

    assert isinstance(wire, FeedSourceConfig)
    assert str(wire.url) == "https://other.example/feed.xml"
    assert (wire.interval_s, wire.kind) == (30.0, "news")  # the file's own hot tier
    assert isinstance(blog, FeedSourceConfig)
    assert (blog.interval_s, blog.jitter) == (6 * 3600.0, 0.0)  # the default cold tier
    assert isinstance(reviews, JsonApiSourceConfig)
    assert reviews.interval_s == 900.0
    assert reviews.headers == {"Authorization": "Bearer none"}
    assert reviews.fields.metadata == {"author": "$.by.name"}
    assert isinstance(drops, DirectorySourceConfig)
    assert drops.interval_s == 5.0


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{name: x, type: rss}", "source 'x': url: Field required"),
        ("{name: x, type: rss, url: 'ftp:/nope'}", "source 'x': url:"),
        ("{name: x, type: rss, url: 'https://a.example', tier: warm}", "source 'x': tier:"),
        ("{name: x, type: rss, url: 'https://a.example', jitter: 1.5}", "source 'x': jitter:"),
        ("{name: x, type: gopher, url: 'https://a.example'}", "source 'x': (source):"),
        ("{name: x, type: directory}", "source 'x': path: Field required"),
        (
            "{name: x, type: json_api, url: 'https://a.example', fields: {body: '$.[['}}",
            "source 'x': fields.body: Value error, invalid JSONPath",
        ),
        (
            "{name: x, type: json_api, url: 'https://a.example', fields: {title: $.t}}",
            "source 'x': fields.body: Field required",
        ),
        (
            "{name: x, type: json_api, url: 'https://a.example', fields: {body: $.b, colour: $.c}}",
            "source 'x': fields.colour: Extra inputs are not permitted",
        ),
        ("{type: rss, url: 'https://a.example'}", "source '#1': name: Field required"),
        ("{name: 'has space', type: rss, url: 'https://a.example'}", "name: String should match"),
    ],
)
def test_errors_name_the_source_and_the_field(source: str, expected: str) -> None:
    with pytest.raises(SourcesConfigError) as raised:
        parse_sources(yaml.safe_load(f"sources: [{source}]"))
    assert expected in str(raised.value)


def test_names_must_be_unique() -> None:
    document = {"sources": [{"name": "a", "type": "directory", "path": "/x"}] * 2}
    with pytest.raises(SourcesConfigError, match=r"repeated: \['a'\]"):
        parse_sources(document)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (None, "top-level `sources:` list"),
        ({"sources": {}}, "top-level `sources:` list"),
        ({"sources": [], "extra": 1}, "unknown top-level keys"),
        ({"sources": [], "tiers": {"warm": 1}}, "tiers:"),
        ({"sources": [], "tiers": {"hot": -1}}, "tiers.hot"),
    ],
)
def test_file_level_errors(document: object, expected: str) -> None:
    with pytest.raises(SourcesConfigError, match=expected):
        parse_sources(document)


def test_env_expansion_requires_a_default_or_a_value() -> None:
    assert expand_env("${A:-x}/${B}", {"B": "y"}) == "x/y"
    with pytest.raises(SourcesConfigError, match="B is not set"):
        expand_env("${B}", {})


def test_unreadable_and_invalid_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SourcesConfigError, match="cannot read"):
        load_sources(tmp_path / "missing.yaml")
    with pytest.raises(SourcesConfigError, match="not valid YAML"):
        load_sources(_write(tmp_path, "sources: [\n"))
    with pytest.raises(SourcesConfigError, match=r"sources\.yaml: source 'x'"):
        load_sources(_write(tmp_path, "sources: [{name: x, type: rss}]"))
