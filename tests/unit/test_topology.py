"""A consumer queue names its event class: the routing key and the decoded model come from it."""

from dataclasses import replace

import pytest

from sift_common.contracts import DocumentCollected, EntityRefresh
from sift_common.messaging.topology import (
    ALL_CONSUMER_QUEUES,
    ANALYZER_DOCUMENTS,
    ARCHIVER_DIGESTS,
    ConsumerQueue,
    Topology,
)


def test_the_routing_key_is_the_events() -> None:
    assert ANALYZER_DOCUMENTS.event is DocumentCollected
    assert ANALYZER_DOCUMENTS.routing_key == DocumentCollected.ROUTING_KEY == "document.collected"
    for spec in ALL_CONSUMER_QUEUES:
        assert spec.routing_key == spec.event.ROUTING_KEY


def test_a_queue_belongs_to_the_service_its_name_starts_with() -> None:
    assert [spec.consumer for spec in ALL_CONSUMER_QUEUES] == [
        "collector",
        "analyzer",
        "analyzer",
        "archiver",
        "archiver",
    ]


def test_replace_keeps_the_event_and_changes_the_ladder() -> None:
    fast = replace(ANALYZER_DOCUMENTS, retry_delays_ms=(100,), max_retries=1)
    assert fast.event is DocumentCollected
    assert fast.routing_key == "document.collected"
    assert fast.retry_delays_ms == (100,)


def test_resolve_finds_the_topologys_version_of_a_queue() -> None:
    fast = replace(ANALYZER_DOCUMENTS, retry_delays_ms=(100,))
    topology = Topology("t.", (fast, ARCHIVER_DIGESTS))
    assert topology.resolve(ANALYZER_DOCUMENTS) is fast
    with pytest.raises(KeyError, match=r"archiver\.documents"):
        topology.resolve(ConsumerQueue("archiver.documents", DocumentCollected))
    with pytest.raises(KeyError, match="EntityRefresh"):
        topology.resolve(ConsumerQueue("archiver.digests", EntityRefresh))
