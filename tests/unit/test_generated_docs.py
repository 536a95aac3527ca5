"""The references generated from the code (docs/configuration.md, docs/events.md,
docs/asyncapi/) are in step with it, and the event flow they describe has no loose end."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.docs.__main__ import (
    ASYNCAPI,
    CONFIGURATION,
    EVENTS,
    RELIABILITY,
    main,
    service_settings,
)
from scripts.docs.faults import RESULTS
from sift_analyzer.settings import AnalyzerSettings
from sift_analyzer.topology import analyzer_topology
from sift_archiver.app import Archiver
from sift_archiver.settings import ArchiverSettings
from sift_collector.app import Collector
from sift_collector.contracts_export import contract_settings
from sift_common.contracts import EVENT_TYPES
from sift_common.messaging.asyncapi import asyncapi_document
from sift_common.messaging.catalog import consumed_by, services, unconsumed, unproduced
from sift_common.messaging.topology import PRODUCERS, UPSTREAM, Topology
from sift_common.settings_reference import undescribed

ROOT = Path(__file__).resolve().parents[2]
FOREIGN_ENV = {
    "SIFT_NAMESPACE": "elsewhere.",
    "SIFT_COLLECTOR_MAX_BATCH": "3",
    "SIFT_ANALYZER_RETRY_DELAYS_MS": "1,2",
    "SIFT_RABBIT_URL": "amqp://someone:secret@rabbit.example:5673/",
}


def test_committed_references_are_up_to_date() -> None:
    # A fresh process with a foreign environment: the output must not depend on it.
    result = subprocess.run(
        [sys.executable, "-m", "scripts.docs", "--check"],
        capture_output=True,
        text=True,
        env={**os.environ, **FOREIGN_ENV},
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"stale references; run `make docs`\n{result.stderr}"


def test_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for page in (CONFIGURATION, EVENTS, RELIABILITY, Path(RESULTS)):
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, tmp_path / page)
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0
    events = tmp_path / EVENTS
    events.write_text(events.read_text().replace("`analyzer.documents`", "`somewhere`"))
    (tmp_path / ASYNCAPI / "archiver.yaml").unlink()
    assert main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docs/events.md is stale" in err
    assert "docs/asyncapi/archiver.yaml is stale" in err
    assert "configuration.md" not in err


def test_a_page_without_its_markers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / CONFIGURATION).write_text("# Configuration\n")
    (tmp_path / EVENTS).write_text((ROOT / EVENTS).read_text())
    assert main(["--root", str(tmp_path)]) == 2


def test_every_queue_has_a_producer_and_every_event_a_queue() -> None:
    topology = Topology()
    assert unproduced(topology) == []
    assert unconsumed(topology, EVENT_TYPES) == []
    assert set(PRODUCERS) == set(EVENT_TYPES)


def test_producers_and_consumers_are_services_of_this_repository() -> None:
    directories = {path.name for path in (ROOT / "services").iterdir() if path.is_dir()}
    named = {name for producers in PRODUCERS.values() for name in producers} - {UPSTREAM}
    assert set(services(Topology())) == named | {"collector", "analyzer", "archiver"}
    assert set(services(Topology())) <= directories


def test_the_services_subscribe_what_the_topology_says_they_consume() -> None:
    topology = Topology()

    def queues(service: str) -> set[str]:
        return {topology.work_queue(spec) for spec in consumed_by(topology, service)}

    collector = Collector(contract_settings())
    assert {subscriber.queue.name for subscriber in collector.broker.subscribers} == queues(
        "collector"
    )
    archiver = Archiver(ArchiverSettings.model_construct())
    assert {subscriber.queue.name for subscriber in archiver.broker.subscribers} == queues(
        "archiver"
    )
    _, documents, refresh = analyzer_topology(AnalyzerSettings.model_construct())
    assert {documents.name, refresh.name} == queues("analyzer")


def _payload(document: dict[str, Any], channel: str) -> str:
    [ref] = document["channels"][channel]["messages"].values()
    message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
    payload: str = message["payload"]["$ref"]
    return payload.rsplit("/", 1)[-1]


def test_asyncapi_of_the_collector_receives_the_intake_and_sends_collected_documents() -> None:
    document = asyncapi_document("collector")
    intake = document["channels"]["collector.intake"]
    assert intake["address"] == "intake.document"
    assert _payload(document, "collector.intake") == "DocumentSubmitted"
    assert {"DocumentSubmitted", "IncomingDocument", "DocumentCollected", "Document"} <= set(
        document["components"]["schemas"]
    )
    sent = document["operations"]["document.collected"]
    assert sent["action"] == "send"
    assert sent["bindings"]["amqp"]["deliveryMode"] == 2  # persistent
    assert sent["bindings"]["amqp"]["mandatory"] is True
    assert document["operations"]["collector.intake"]["action"] == "receive"


@pytest.mark.parametrize(
    ("service", "received", "sent"),
    [
        (
            "analyzer",
            {"analyzer.documents": "DocumentCollected", "analyzer.entity-refresh": "EntityRefresh"},
            {"document.analyzed": "DocumentAnalyzed", "entity.digested": "EntityDigested"},
        ),
        (
            "archiver",
            {"archiver.documents": "DocumentAnalyzed", "archiver.digests": "EntityDigested"},
            {"entity.refresh": "EntityRefresh"},
        ),
    ],
)
def test_asyncapi_of_every_service_names_its_queues_and_its_events(
    service: str, received: dict[str, str], sent: dict[str, str]
) -> None:
    document = yaml.safe_load((ROOT / ASYNCAPI / f"{service}.yaml").read_text())
    actions = {name: operation["action"] for name, operation in document["operations"].items()}
    assert actions == {**dict.fromkeys(received, "receive"), **dict.fromkeys(sent, "send")}
    for channel, event in {**received, **sent}.items():
        assert _payload(document, channel) == event
        assert event in document["components"]["schemas"]
    assert document["info"]["title"] == f"Sift {service}"


def test_every_setting_says_what_it_means() -> None:
    assert undescribed(service_settings()) == []


def test_the_configuration_reference_lists_every_variable_once_per_group() -> None:
    text = (ROOT / CONFIGURATION).read_text()
    assert text.count("| `SIFT_RABBIT_URL` |") == 1
    assert "| `SIFT_ANALYZER_PROFILES` | `services/analyzer/src/sift_analyzer/profiles.yaml` |" in (
        text
    )
    assert str(ROOT) not in text  # no path of this machine
    for service in ("collector", "analyzer", "archiver", "llm-gateway"):
        assert f"\n## {service}\n" in text
