"""Supply chain and source checks run by `make test`: bandit on the sources (libs, services) and
pip-audit on every package `uv.lock` pins (docs/security.md, "Checks in CI").

bandit fails on findings of medium severity or above, at any confidence; the tests it skips are
listed with their reasons under `[tool.bandit]` in pyproject.toml. pip-audit asks PyPI for the
known vulnerabilities of each pinned version; where it cannot get that data (no network, an index
mirror without the per-version JSON API) the test skips and says so. Vulnerabilities that do not
affect Sift, or have no fixed version yet, are listed with a reason in `pip-audit-ignore.txt`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
IGNORE_FILE = ROOT / "pip-audit-ignore.txt"


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_bandit_finds_nothing_of_medium_severity_or_above() -> None:
    result = _run(
        [str(BIN / "bandit"), "-c", "pyproject.toml", "-r", "libs", "services",
         "--severity-level", "medium", "--confidence-level", "low", "-f", "json", "-q"],
        timeout=120,
    )  # fmt: skip
    report = json.loads(result.stdout)
    findings = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} ({r['issue_severity']}, "
        f"confidence {r['issue_confidence']}): {r['issue_text']}"
        for r in report["results"]
    ]
    print("\n".join(findings))
    assert not report["errors"], report["errors"]
    assert report["metrics"]["_totals"]["loc"] > 1000  # it did scan the sources
    assert findings == [], "bandit findings (fix, or `# nosec BXXX  reason` where justified)"
    assert result.returncode == 0, result.stderr[-2000:]


def ignored_vulnerabilities(path: Path = IGNORE_FILE) -> dict[str, str]:
    """`ID  # reason` per line; a line without a reason is an error, not a silent ignore."""
    ignored: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        vuln_id, _, reason = line.partition("#")
        if not reason.strip():
            raise AssertionError(f"{path.name}:{number}: {vuln_id.strip()} has no reason")
        ignored[vuln_id.strip()] = reason.strip()
    return ignored


def test_the_ignore_list_gives_a_reason_per_entry() -> None:
    assert all(ignored_vulnerabilities().values())


def _uv() -> str:
    # `uv run` names itself in $UV; `make` may run a uv that is not on PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("no uv to export uv.lock with")
    return uv


def _audit(tmp_path: Path) -> dict[str, Any]:
    requirements = tmp_path / "requirements.txt"
    export = _run(
        [_uv(), "export", "--frozen",
         "--no-hashes", "--all-packages", "--no-emit-workspace", "-o", str(requirements)],
        timeout=120,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr[-2000:]
    ignores = [arg for vuln in ignored_vulnerabilities() for arg in ("--ignore-vuln", vuln)]
    try:
        result = _run(
            [str(BIN / "pip-audit"), "--no-deps", "--disable-pip", "-r", str(requirements),
             "--progress-spinner", "off", "-f", "json", *ignores],
            timeout=600,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.skip("pip-audit: PyPI's vulnerability data did not answer within 600 s")
    if not result.stdout.strip():
        # No report at all: pip-audit could not reach its vulnerability service.
        pytest.skip(f"pip-audit could not run: {result.stderr.strip()[-500:]}")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_no_pinned_package_has_a_known_vulnerability(tmp_path: Path) -> None:
    report = _audit(tmp_path)
    dependencies = report["dependencies"]
    vulnerable = [
        f"{d['name']} {d['version']}: {v['id']} {v.get('aliases', [])} fixed in "
        f"{v.get('fix_versions') or 'no release yet'}"
        for d in dependencies
        for v in d.get("vulns", [])
    ]
    print("\n".join(vulnerable))
    assert vulnerable == [], "upgrade in uv.lock, or list in pip-audit-ignore.txt with a reason"
    skipped = [d for d in dependencies if "skip_reason" in d]
    if skipped:
        # Known vulnerabilities were looked up for none, or only some, of the pins: not a pass.
        pytest.skip(
            f"pip-audit audited {len(dependencies) - len(skipped)} of {len(dependencies)} "
            f"pinned packages; e.g. {skipped[0]['skip_reason']}"
        )
    assert len(dependencies) > 50  # the whole lock, not an empty export
