"""`make demo` itself: run the demo runner as the Makefile does and check its report against
the corpus manifest and the store."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.make_corpus import COMPANIES_EN, COMPANIES_KO
from sift_analyzer.entities import canonical, is_word_run, load_known_entities
from sift_common.contracts import EntityRef
from sift_common.store.embedded import (
    DEFAULT_DATA_DIR,
    start_embedded_postgres,
    stop_embedded_postgres,
)
from tests.e2e.conftest import DATA, store_counts

ROOT = DATA.parent


@pytest.fixture
def demo_store() -> Iterator[None]:
    """The demo's embedded PostgreSQL, started first: the demo then reuses it instead of
    stopping it at its end, so the store can be counted afterwards. Stopped only if it was
    not running before."""
    was_running = (DEFAULT_DATA_DIR / "postmaster.pid").exists()
    start_embedded_postgres(DEFAULT_DATA_DIR)
    yield
    if not was_running:
        stop_embedded_postgres(DEFAULT_DATA_DIR)


@pytest.mark.usefixtures("demo_store")
async def test_demo_report_matches_the_corpus_and_the_store(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "--report", str(report_path)],
        cwd=ROOT,
        env={name: value for name, value in os.environ.items() if name != "KEEP"},  # no wait
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-3000:]
    assert "Sift demo report" in run.stdout
    manifest = json.loads((DATA / "MANIFEST.json").read_text())
    report = json.loads(report_path.read_text())
    unique = manifest["total_valid_unique"]

    assert report["collected"] == unique
    assert report["duplicates_dropped"] == manifest["total_duplicates"]
    assert report["complete"] is True
    # The weak CPU model sometimes fails an analysis twice; such a document is dead-lettered
    # with the reason, never stored half-done, and the two add up to the corpus.
    lost = report["analysis_dead_lettered"]
    stored = unique - lost
    counts = await store_counts(report["database_url"])
    assert counts == {
        "documents": stored,
        "distinct_content": stored,
        "analyses": stored,
        "analysed_documents": stored,
        "embedded_documents": stored,
    }
    intake = [item for item in report["dead_lettered"] if item["queue"].endswith("intake.dlq")]
    assert len(intake) == manifest["total_dead_lettered"]
    assert len(report["dead_lettered"]) == len(intake) + lost
    # Only a model answer invalid after its repair may stop a document, never a transient
    # failure that ran out of retries.
    analysis = [item for item in report["dead_lettered"] if item not in intake]
    assert all("analysis failed" in item["reason"] for item in analysis), analysis
    assert all(item["reason"] != "(no reason header)" for item in report["dead_lettered"])
    assert len(report["refused"]) == manifest["total_refused"]
    assert all(item["reason"] for item in report["refused"])
    failed = {item["file"]: item["reason"] for item in report["failed_files"]}
    assert set(failed) == set(manifest["malformed"]["directory"])
    assert "body" in failed["broken.jsonl"]
    assert "not JSON" in failed["not-json.json"]
    for query in ("top", "bottom", "search"):
        assert report["queries"][query], query
    real = corpus_entity_names()
    ranked = [item["name"] for query in ("top", "bottom") for item in report["queries"][query]]
    # No sentences, sentiment words or inventions: each name is a real one, or whole words of
    # one (the 135M model once ranked "Mobil" from a document about "Exxon Mobil").
    assert not {name for name in ranked if not part_of_a_name(name, real)}, ranked


GENERIC = {"corp", "corp.", "inc", "inc.", "co", "co.", "ltd", "plc", "group", "company", "the"}


def part_of_a_name(name: str, real: set[str]) -> bool:
    """`name` is a real name, or a run of whole words of one that is not only "Corp" or such."""
    if set(name.casefold().split()) <= GENERIC:
        return False
    return any(is_word_run(name, full) for full in real)


def corpus_entity_names() -> set[str]:
    """Every company and business the corpus is about, under its canonical name."""
    known = load_known_entities()
    companies = COMPANIES_EN + COMPANIES_KO
    refs = [EntityRef(kind="company", name=c.name, ticker=c.ticker) for c in companies]
    for path in [DATA / "api.json", DATA / "amqp.json", *sorted((DATA / "drop").glob("*"))]:
        for line in (
            path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]
        ):
            try:
                records = json.loads(line)
            except ValueError:
                continue  # the deliberately malformed records
            items = records.get("documents", [records]) if isinstance(records, dict) else records
            refs += [
                EntityRef(**s)
                for item in items
                if isinstance(item, dict)
                for s in item.get("subjects", [])
            ]
    return {canonical(known, ref, None).name for ref in refs}
