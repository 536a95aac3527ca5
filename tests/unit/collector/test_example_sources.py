"""docs/examples/sources.yaml loads with the collector's own loader and shows every source type."""

from pathlib import Path

import httpx
import pytest

from sift_collector.sources import build_source
from sift_collector.sources.config import (
    DirectorySourceConfig,
    FeedSourceConfig,
    JsonApiSourceConfig,
    load_sources,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "sources.yaml"
VARIABLES = ("ACME_FEED_URL", "REVIEWS_API_TOKEN", "SIFT_DROP_DIR")


def test_the_example_loads_with_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    sources = {source.name: source for source in load_sources(EXAMPLE)}
    assert {type(source) for source in sources.values()} == {
        FeedSourceConfig,
        JsonApiSourceConfig,
        DirectorySourceConfig,
    }
    assert sources["acme-newsroom"].interval_s == 60  # its tier's
    assert sources["reviews-api"].interval_s == 300  # its own
    reviews = sources["reviews-api"]
    assert isinstance(reviews, JsonApiSourceConfig)
    assert reviews.headers["Authorization"] == "Bearer dev-token"
    assert set(reviews.fields.metadata) == {"business", "rating"}


def test_the_example_takes_its_values_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIFT_DROP_DIR", str(tmp_path))
    monkeypatch.setenv("ACME_FEED_URL", "https://feeds.example/acme.xml")
    sources = {source.name: source for source in load_sources(EXAMPLE)}
    drops = sources["partner-drops"]
    assert isinstance(drops, DirectorySourceConfig)
    assert drops.path == tmp_path
    feed = sources["acme-newsroom"]
    assert isinstance(feed, FeedSourceConfig)
    assert str(feed.url) == "https://feeds.example/acme.xml"


async def test_every_example_source_can_be_built() -> None:
    async with httpx.AsyncClient() as client:
        for config in load_sources(EXAMPLE):
            assert build_source(config, client) is not None
