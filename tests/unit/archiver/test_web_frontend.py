"""The analyst page's JavaScript (services/archiver/web/): eslint, its unit tests under node,
and the committed build (sift_archiver/static/) is exactly what the source builds to now.

`npm ci` runs when node_modules is missing or older than package-lock.json; npm keeps its
downloads in the user's cache (~/.npm), so a rerun installs offline in seconds."""

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WEB = ROOT / "services/archiver/web"
STATIC = ROOT / "services/archiver/src/sift_archiver/static"
NPM_TIMEOUT_S = 600


def npm(*args: str) -> subprocess.CompletedProcess[str]:
    npm_path = shutil.which("npm")
    if npm_path is None:
        pytest.fail("npm is not on PATH: the analyst page's checks need node and npm")
    return subprocess.run(
        [npm_path, *args], cwd=WEB, capture_output=True, text=True, timeout=NPM_TIMEOUT_S,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def node_modules() -> None:
    installed = WEB / "node_modules/.package-lock.json"
    lock = WEB / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = npm("ci", "--prefer-offline", "--no-audit", "--no-fund")
    assert done.returncode == 0, done.stdout + done.stderr


def test_eslint_passes(node_modules: None) -> None:
    done = npm("run", "lint")
    assert done.returncode == 0, done.stdout + done.stderr


def test_javascript_unit_tests_pass(node_modules: None) -> None:
    done = npm("test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout


def test_committed_build_is_what_the_source_builds_to(node_modules: None, tmp_path: Path) -> None:
    done = npm("run", "build", "--", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    built = sorted(p.name for p in tmp_path.iterdir())
    assert built == sorted(p.name for p in STATIC.iterdir()), "run `make web` and commit"
    _match, mismatch, errors = filecmp.cmpfiles(tmp_path, STATIC, built, shallow=False)
    assert (mismatch, errors) == ([], []), f"stale build of {mismatch + errors}: run `make web`"
    assert str(ROOT) not in (tmp_path / "app.js").read_text(encoding="utf-8")
