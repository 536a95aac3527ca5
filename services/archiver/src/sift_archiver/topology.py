"""The archiver's view of the broker: every queue of the system, its own two with the retry
ladder its settings give."""

from dataclasses import replace

from sift_archiver.settings import ArchiverSettings
from sift_common.messaging.topology import (
    ALL_CONSUMER_QUEUES,
    ARCHIVER_DIGESTS,
    ARCHIVER_DOCUMENTS,
    Topology,
)


def archiver_topology(settings: ArchiverSettings) -> Topology:
    mine = {ARCHIVER_DOCUMENTS.name, ARCHIVER_DIGESTS.name}
    delays, retries = settings.retry_delays, settings.archiver_max_retries
    queues = tuple(
        replace(spec, retry_delays_ms=delays, max_retries=retries) if spec.name in mine else spec
        for spec in ALL_CONSUMER_QUEUES
    )
    return Topology(settings.namespace, queues)
