"""Export the collector's HTTP contract: the OpenAPI document of the ingest API.

    python -m sift_collector.contracts_export            # write docs/openapi/collector.json
    python -m sift_collector.contracts_export --check    # exit 1 if the file is stale

The document comes from the real composition (`Collector`, built without any I/O) under the
default settings, never this machine's environment, so the output is the same everywhere. The
AMQP side (docs/asyncapi/) is generated for every service from the topology by `make docs`
(`sift_common.messaging.asyncapi`).
"""

import argparse
import json
import sys
from pathlib import Path

from sift_collector.app import Collector
from sift_collector.settings import CollectorSettings
from sift_common.generated import stale, write

OPENAPI_FILE = Path("openapi/collector.json")


def contract_settings() -> CollectorSettings:
    """The defaults, not read from the environment: the contract describes the product."""
    return CollectorSettings.model_construct()


def render(collector: Collector) -> dict[Path, str]:
    """The text of each contract file, keyed by its path under the docs folder."""
    return {
        OPENAPI_FILE: json.dumps(collector.api.openapi(), indent=2, ensure_ascii=False) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sift_collector.contracts_export")
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the docs folder")
    args = parser.parse_args(argv)
    rendered = render(Collector(contract_settings()))
    if args.check:
        problems = stale(args.docs, rendered)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make docs` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.docs, rendered):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
