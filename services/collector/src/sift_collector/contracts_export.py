"""Export the collector's published contracts: AsyncAPI (AMQP) and OpenAPI (HTTP).

    python -m sift_collector.contracts_export            # write docs/asyncapi, docs/openapi
    python -m sift_collector.contracts_export --check    # exit 1 if the files are stale

Both documents come from the real composition (`Collector`, built without any I/O) under the
default settings, never this machine's environment, so the output is the same everywhere.
The AsyncAPI document is FastStream's, with one correction: the shared reliable consumer
decodes raw bytes itself, so FastStream sees a binary payload on the intake channel; the export
puts the `DocumentSubmitted` schema there, which is what the intake validates.
"""

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from faststream.specification import AsyncAPI

from sift_collector.app import Collector
from sift_collector.settings import CollectorSettings
from sift_common.contracts import DocumentSubmitted
from sift_common.messaging.topology import COLLECTOR_INTAKE

ASYNCAPI_FILE = Path("asyncapi/collector.yaml")
OPENAPI_FILE = Path("openapi/collector.json")
ASYNCAPI_DESCRIPTION = (
    "How documents enter Sift over AMQP. Publishers send `DocumentSubmitted` with routing key "
    "`intake.document` to the `sift` topic exchange (persistent, JSON). Invalid messages go to "
    "`collector.intake.dlq` with the reason in the `x-sift-dead-letter-reason` header. The "
    "collector publishes every accepted, deduplicated document as `document.collected`."
)


def contract_settings() -> CollectorSettings:
    """The defaults, not read from the environment: the contract describes the product."""
    return CollectorSettings.model_construct()


def render(collector: Collector) -> dict[Path, str]:
    """The text of each contract file, keyed by its path under the docs folder."""
    spec = AsyncAPI(
        collector.broker,
        title="Sift collector",
        version=collector.api.version,
        description=ASYNCAPI_DESCRIPTION,
    ).to_specification()
    asyncapi = _with_intake_payload(
        spec.to_jsonable(), collector.topology.work_queue(COLLECTOR_INTAKE)
    )
    return {
        ASYNCAPI_FILE: yaml.safe_dump(asyncapi, sort_keys=False, allow_unicode=True, width=100),
        OPENAPI_FILE: json.dumps(collector.api.openapi(), indent=2, ensure_ascii=False) + "\n",
    }


def _with_intake_payload(document: dict[str, Any], channel: str) -> dict[str, Any]:
    schemas: dict[str, Any] = document["components"]["schemas"]
    messages: dict[str, Any] = document["components"]["messages"]
    submitted = DocumentSubmitted.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in submitted.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas[DocumentSubmitted.__name__] = submitted
    for ref in document["channels"][channel]["messages"].values():
        message = messages[ref["$ref"].rsplit("/", 1)[-1]]
        binary = message["payload"]["$ref"].rsplit("/", 1)[-1]
        schemas.pop(binary, None)
        message["payload"] = {"$ref": f"#/components/schemas/{DocumentSubmitted.__name__}"}
    return document


def stale(docs: Path, rendered: dict[Path, str]) -> list[str]:
    """A short diff per file that differs from what would be written now."""
    problems: list[str] = []
    for relative, text in rendered.items():
        path = docs / relative
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            diff = list(
                difflib.unified_diff(
                    current.splitlines(), text.splitlines(), str(path), "regenerated", lineterm=""
                )
            )
            shown = "\n".join(diff[:40]) + (
                f"\n… {len(diff) - 40} more lines" if len(diff) > 40 else ""
            )
            problems.append(f"{path} is stale:\n{shown}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sift_collector.contracts_export")
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the docs folder")
    args = parser.parse_args(argv)
    rendered = render(Collector(contract_settings()))
    if args.check:
        problems = stale(args.docs, rendered)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make docs-contracts` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for relative, text in rendered.items():
        path = args.docs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
