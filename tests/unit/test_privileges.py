"""Each service's broker permissions, read off the topology (privileges.py): the regexes match
what the service needs and nothing of another service's (proved on a broker in
tests/integration/test_broker_privileges.py)."""

import re

from sift_common.contracts import DocumentCollected, DocumentSubmitted
from sift_common.messaging.privileges import NOTHING, broker_users, exactly, parked
from sift_common.messaging.topology import PRODUCERS, Topology

TOPOLOGY = Topology("t1.")


def users() -> dict[str, dict[str, str]]:
    found = {}
    for user in broker_users(TOPOLOGY):
        perms = {"configure": user.configure, "write": user.write, "read": user.read}
        for topic in user.topics:
            perms[f"topic write {topic.exchange}"] = topic.write
            perms[f"topic read {topic.exchange}"] = topic.read
        found[user.name] = perms
    return found


def matches(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def test_one_user_per_service_and_one_for_upstream_publishers() -> None:
    assert list(users()) == ["sift-collector", "sift-analyzer", "sift-archiver", "sift-upstream"]


def test_a_service_publishes_only_the_events_it_produces() -> None:
    for event, producers in PRODUCERS.items():
        for name, perms in users().items():
            allowed = matches(perms["topic write t1.sift"], event.ROUTING_KEY)
            assert allowed == (name.removeprefix("sift-") in producers), (name, event)


def test_a_service_configures_and_reads_only_its_own_work_queues() -> None:
    analyzer = users()["sift-analyzer"]
    for queue in ("t1.analyzer.documents", "t1.analyzer.entity-refresh"):
        assert matches(analyzer["configure"], queue)
        assert matches(analyzer["read"], queue)
    for other in ("t1.archiver.documents", "t1.analyzer.documents.dlq", "t1.sift", "analyzer.x"):
        assert not matches(analyzer["configure"], other)
    assert not matches(analyzer["read"], "t1.archiver.documents")


def test_nobody_writes_to_the_default_exchange_or_another_services_ladder() -> None:
    for perms in users().values():
        assert not matches(perms["write"], "amq.default")
        assert not matches(perms["write"], "")
    collector = users()["sift-collector"]["topic write t1.sift.retry"]
    assert matches(collector, "t1.collector.intake.retry.5000ms")
    assert matches(collector, "t1.collector.intake.dlq")
    assert not matches(collector, "t1.archiver.documents.dlq")
    assert not matches(collector, "t1.collector.intake")  # the work queue itself: no


def test_upstream_may_only_submit() -> None:
    upstream = users()["sift-upstream"]
    assert upstream["configure"] == upstream["read"] == NOTHING
    assert upstream["write"] == exactly(["t1.sift"])
    assert matches(upstream["topic write t1.sift"], DocumentSubmitted.ROUTING_KEY)
    assert not matches(upstream["topic write t1.sift"], DocumentCollected.ROUTING_KEY)


def test_regexes_escape_names() -> None:
    assert exactly([]) == parked([]) == NOTHING
    assert not matches(exactly(["a.b"]), "axb")
