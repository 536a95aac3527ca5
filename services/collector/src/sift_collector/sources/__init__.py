"""Scheduled sources: RSS/Atom feeds, JSON HTTP APIs and drop folders (see `config`)."""

import httpx

from sift_collector.sources.base import Cursor, Poll, Source, SourceError
from sift_collector.sources.config import (
    DirectorySourceConfig,
    FeedSourceConfig,
    JsonApiSourceConfig,
    SourceConfig,
    load_sources,
)
from sift_collector.sources.directory import DirectorySource
from sift_collector.sources.feed import FeedSource
from sift_collector.sources.json_api import JsonApiSource

__all__ = [
    "Cursor",
    "Poll",
    "Source",
    "SourceConfig",
    "SourceError",
    "build_source",
    "load_sources",
]


def build_source(config: SourceConfig, client: httpx.AsyncClient) -> Source:
    """The source a configuration describes; HTTP sources share `client`."""
    if isinstance(config, FeedSourceConfig):
        return FeedSource(config, client)
    if isinstance(config, JsonApiSourceConfig):
        return JsonApiSource(config, client)
    if isinstance(config, DirectorySourceConfig):
        return DirectorySource(config)
    raise TypeError(f"unknown source configuration {type(config).__name__}")
