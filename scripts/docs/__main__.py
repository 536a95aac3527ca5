"""Regenerate the references that are generated from the code, or check that none is stale.

    python -m scripts.docs                # write them (`make docs`)
    python -m scripts.docs --check        # exit 1 with a diff when one is out of step

- docs/configuration.md, the `settings` section: the settings model of every service found
  under services/*/src/*/settings.py, shared fragments once (sift_common.settings_reference);
- docs/events.md, the `events` section: the event flow, from the topology and `PRODUCERS`
  (sift_common.messaging.catalog);
- docs/asyncapi/<service>.yaml: the AsyncAPI document of every service that consumes or
  publishes an event (sift_common.messaging.asyncapi);
- docs/reliability.md, the `faults` section: the fault matrix from the saved run
  docs/results/fault-matrix.json (scripts/docs/faults.py).

The collector's OpenAPI document has its own generator (`python -m
sift_collector.contracts_export`); `make docs` runs both. Nothing depends on this machine's
environment: defaults are the models', and paths are shown relative to the repository.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path

import yaml

from scripts.docs.faults import RESULTS, faults_section
from sift_common.generated import section_of, stale, write
from sift_common.messaging.asyncapi import asyncapi_document
from sift_common.messaging.catalog import events_section, services
from sift_common.messaging.topology import Topology
from sift_common.settings import SiftSettings
from sift_common.settings_reference import reference_section

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = Path("docs/configuration.md")
EVENTS = Path("docs/events.md")
ASYNCAPI = Path("docs/asyncapi")
RELIABILITY = Path("docs/reliability.md")


def service_settings() -> dict[str, type[SiftSettings]]:
    """Service directory name → its settings class, in the order of the event flow."""
    found: dict[str, type[SiftSettings]] = {}
    for path in sorted(ROOT.glob("services/*/src/*/settings.py")):
        module = importlib.import_module(f"{path.parent.name}.settings")
        classes = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, SiftSettings)
            and value.__module__ == module.__name__
        ]
        if len(classes) != 1:
            raise SystemExit(f"{path}: expected one settings class, found {len(classes)}")
        found[path.parents[2].name] = classes[0]
    flow = services(Topology())
    return dict(sorted(found.items(), key=lambda item: _flow_position(flow, item[0])))


def _flow_position(flow: list[str], service: str) -> tuple[int, str]:
    return (flow.index(service) if service in flow else len(flow), service)


def render(root: Path) -> dict[Path, str]:
    """Each generated file's text, keyed by its path under `root`."""
    topology = Topology()
    settings = reference_section(service_settings(), ROOT)
    rendered = {
        CONFIGURATION: section_of(root, CONFIGURATION, "settings", settings),
        EVENTS: section_of(root, EVENTS, "events", events_section(topology)),
        RELIABILITY: section_of(root, RELIABILITY, "faults", _faults(root)),
    }
    for service in services(topology):
        document = asyncapi_document(service, topology)
        rendered[ASYNCAPI / f"{service}.yaml"] = yaml.safe_dump(
            document, sort_keys=False, allow_unicode=True, width=100
        )
    return rendered


def _faults(root: Path) -> str:
    run = json.loads((root / RESULTS).read_text(encoding="utf-8"))
    return faults_section(run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.docs")
    parser.add_argument("--check", action="store_true", help="fail if a file is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="where docs/ is (the repo)")
    args = parser.parse_args(argv)
    try:
        rendered = render(args.root)
    except ValueError as exc:
        print(f"cannot generate the docs: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = stale(args.root, rendered)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make docs` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.root, rendered):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
