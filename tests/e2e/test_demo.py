"""`make demo` itself: run the demo runner as the Makefile does and check its report against
the corpus manifest and the store."""

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import DATA, store_counts

ROOT = DATA.parent


async def test_demo_report_matches_the_corpus_and_the_store(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "--report", str(report_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Sift demo report" in run.stdout
    manifest = json.loads((DATA / "MANIFEST.json").read_text())
    report = json.loads(report_path.read_text())
    unique = manifest["total_valid_unique"]

    assert report["collected"] == unique
    assert report["duplicates_dropped"] == manifest["total_duplicates"]
    assert report["complete"] is True
    counts = await store_counts(report["database_url"])
    assert counts == {
        "documents": unique,
        "distinct_content": unique,
        "analyses": unique,
        "analysed_documents": unique,
        "embedded_documents": unique,
    }
    assert len(report["dead_lettered"]) == manifest["total_dead_lettered"]
    assert all(
        "refused" in item["reason"] or "JSON" in item["reason"] or "valid" in item["reason"]
        for item in report["dead_lettered"]
    ), report["dead_lettered"]
    assert len(report["refused"]) == manifest["total_refused"]
    assert all(item["reason"] for item in report["refused"])
    failed = {item["file"]: item["reason"] for item in report["failed_files"]}
    assert set(failed) == set(manifest["malformed"]["directory"])
    assert "body" in failed["broken.jsonl"]
    assert "not JSON" in failed["not-json.json"]
    for query in ("top", "bottom", "search"):
        assert report["queries"][query], query
