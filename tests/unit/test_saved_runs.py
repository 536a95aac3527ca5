"""Every saved run the README and docs/ cite is in the repository: bench/results/ is ignored
by default, and a figure whose JSON was never committed cannot be checked (one was, for a
day: docs/reliability.md cited bench/results/cluster-vllm-faults.json from a run that stayed
on its machine)."""

import re
import shutil
import subprocess

from tests.conftest import ROOT

CITED = re.compile(r"(?:bench|docs)/results/[\w./-]+\.json")


def cited_runs() -> set[str]:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {match for path in texts for match in CITED.findall(path.read_text())}


def committed(names: set[str]) -> set[str]:
    """Those of `names` git tracks (where there is no git, those that exist: a clean copy)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return {name for name in names if (ROOT / name).is_file()}
    listed = subprocess.run(
        ["git", "ls-files", "--", *sorted(names)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(listed.stdout.split())


def test_every_saved_run_the_docs_cite_is_committed() -> None:
    cited = cited_runs()
    assert "docs/results/fault-matrix.json" in cited, "the pattern finds the citations"
    missing = sorted(cited - committed(cited))
    assert not missing, f"cited but not in the repository (git add -f): {missing}"
