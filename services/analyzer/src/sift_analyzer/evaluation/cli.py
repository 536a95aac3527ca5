"""`sift eval`: analysis and search quality of a model and profiles on the labelled set.

    sift eval                                   the bundled profiles, each profile's own model
    sift eval --model chat --model chat-next    two gateway model profiles side by side
    sift eval --arm name=before,profiles=old.yaml,checks=off --arm name=after
    sift eval --no-search                       analyses only (no archiver needed)
    sift eval --no-analysis --no-search --embeddings embed --embeddings "model=e5;query_prefix=q: "
                                                embedding models ranked alone, side by side
    sift eval --markdown bench/results/eval.json   a saved run's tables (docs/quality.md)

The search part publishes the evaluated documents to the archiver of SIFT_NAMESPACE and
queries its search API: point it at an archiver of its own (`make eval` starts one), not at a
production store.
"""

import asyncio
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sift_analyzer.entities import (
    BUNDLED_KNOWN_ENTITIES,
    KnownEntities,
    load_known_entities,
)
from sift_analyzer.evaluation import report, scoring
from sift_analyzer.evaluation.dataset import EvalSet, EvalSetError, load_eval_set
from sift_analyzer.evaluation.retrieval import EmbeddingArm, evaluate_embeddings
from sift_analyzer.evaluation.runner import Arm, ArmRun, run_arm
from sift_analyzer.evaluation.search import ArchiverApi, publish_documents, subjects_stored
from sift_analyzer.profiles import Profiles, load_profiles
from sift_analyzer.settings import BUNDLED_PROFILES
from sift_common.errors import ConfigError
from sift_common.gateway_client import GatewayClient

console = Console(stderr=True)


@dataclass(frozen=True)
class Targets:
    gateway: str
    archiver: str
    api_key: str
    rabbit: str
    namespace: str
    gateway_key: str | None = None  # SIFT_GATEWAY_API_KEY, sent as Bearer

    def gateway_client(self) -> GatewayClient:
        return GatewayClient(self.gateway, timeout_s=600.0, api_key=self.gateway_key)


def parse_arm(spec: str, default_profiles: Path) -> Arm:
    """`name=N,profiles=PATH,model=M,checks=on|off,examples=PATH` (every key optional)."""
    fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
    if unknown := set(fields) - {"name", "profiles", "model", "checks", "examples"}:
        raise typer.BadParameter(f"unknown keys {sorted(unknown)} in --arm {spec!r}")
    profiles = Path(fields.get("profiles", default_profiles))
    model = fields.get("model") or None
    checks = fields.get("checks", "on") != "off"
    name = fields.get("name") or f"{profiles.stem}{' @' + model if model else ''}"
    loaded = load_profiles(profiles)
    if "examples" in fields:
        loaded = with_examples(loaded, Path(fields["examples"]))
    return Arm(name, loaded, model, checks)


def with_examples(profiles: Profiles, path: Path) -> Profiles:
    """The profiles with the worked examples of `path` (per document kind) added."""
    raw = yaml.safe_load(path.read_text()) or {}
    documents = dict(profiles.documents)
    for kind, examples in raw.items():
        profile = documents[kind]
        data = {**profile.model_dump(by_alias=True), "examples": examples}
        documents[kind] = type(profile).model_validate(data)  # checked against the schema
    return profiles.model_copy(update={"documents": documents})


def build_arms(arms: list[str], models: list[str], profiles: Path) -> list[Arm]:
    if arms:
        return [parse_arm(spec, profiles) for spec in arms]
    loaded = load_profiles(profiles)
    if not models:
        return [Arm(profiles.stem, loaded)]
    return [Arm(f"{profiles.stem} @{model}", loaded, model) for model in models]


async def evaluate(
    evalset: EvalSet, arms: list[Arm], known: KnownEntities, targets: Targets, *,
    concurrency: int, search: bool, wait_s: float,
) -> dict[str, Any]:  # fmt: skip
    runs: list[ArmRun] = []
    async with targets.gateway_client() as gateway:
        for arm in arms:
            runs.append(await _run_with_progress(arm, evalset, gateway, known, concurrency))
    body: dict[str, Any] = {
        "dataset": _dataset_counts(evalset),
        "arms": [_arm_json(run, known) for run in runs],
    }
    if search:  # the documents as the last arm analysed them (the one under test)
        body["search"] = await _search(evalset, runs[-1], known, targets, wait_s)
    return body


async def _run_with_progress(
    arm: Arm, evalset: EvalSet, gateway: GatewayClient, known: KnownEntities, concurrency: int
) -> ArmRun:
    columns = (
        TextColumn(f"[bold]{arm.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(arm.name, total=len(evalset.documents))
        return await run_arm(
            arm, evalset.documents, gateway, known,
            concurrency=concurrency, progress=lambda: bar.advance(task),
        )  # fmt: skip


def _arm_json(run: ArmRun, known: KnownEntities) -> dict[str, Any]:
    return {
        "name": run.arm.name,
        "model": run.arm.model or "per profile",
        "prompt_versions": sorted({p.prompt_version for p in run.arm.profiles.documents.values()}),
        "entity_checks": run.arm.entity_checks,
        "documents": len(run.records),
        "seconds": round(run.seconds, 1),
        "documents_per_second": round(len(run.records) / run.seconds, 3) if run.seconds else None,
        "metrics": scoring.grouped(known, run.records),
        "per_document": [scoring.record_json(record) for record in run.records],
    }


async def _search(
    evalset: EvalSet, run: ArmRun, known: KnownEntities, targets: Targets, wait_s: float
) -> dict[str, Any]:
    docs = evalset.by_id()
    console.print(f"publishing {len(run.analyses)} analysed documents to the archiver …")
    await publish_documents(targets.rabbit, targets.namespace, docs, run.analyses)
    ids = {eval_id: docs[eval_id].document().id for eval_id in run.analyses}
    api = ArchiverApi(targets.archiver, targets.api_key)
    try:
        stored = await api.wait_stored(ids.values(), wait_s)
        console.print(
            f"{len(stored)} stored and embedded; running {len(evalset.queries)} queries …"
        )
        ranked = await api.ranked(evalset.queries, ids, k=10)
    finally:
        await api.aclose()
    subjects = [
        subjects_stored(docs[eval_id], stored[doc_id], known) for eval_id, doc_id in ids.items()
    ]
    languages: dict[str, str] = {doc.id: doc.language for doc in evalset.documents}
    return {
        "arm": run.arm.name,
        "documents_stored": len(stored),
        "groups": scoring.search_metrics(evalset.queries, ranked, languages),
        "subjects": sum(s for s, _ in subjects),
        "subjects_found": sum(f for _, f in subjects),
    }


async def _retrieval(evalset: EvalSet, specs: list[str], targets: Targets) -> list[dict[str, Any]]:
    results = []
    async with targets.gateway_client() as gateway:
        for spec in specs:
            console.print(f"embedding the labelled set with {spec} …")
            arm = EmbeddingArm.parse(spec)
            results.append(
                await evaluate_embeddings(arm, gateway, evalset.documents, evalset.queries)
            )
    return results


def _dataset_counts(evalset: EvalSet) -> dict[str, Any]:
    return {
        "documents": len(evalset.documents),
        "by_language_kind": dict(Counter(f"{d.language}-{d.kind}" for d in evalset.documents)),
        "with_subjects": sum(bool(doc.subjects) for doc in evalset.documents),
        "queries": len(evalset.queries),
    }


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def eval_command(
    data: Annotated[Path, typer.Option(help="the labelled set (eval/README.md)")] = Path("eval"),
    profiles: Annotated[Path, typer.Option(help="analysis profiles YAML")] = BUNDLED_PROFILES,
    model: Annotated[list[str], typer.Option(help="gateway model profile; twice to compare")] = [],  # noqa: B006
    arm: Annotated[
        list[str],
        typer.Option(
            help="name=,profiles=,model=,checks=on|off,examples=PATH; the last arm is searched"
        ),
    ] = [],  # noqa: B006
    known_entities: Annotated[Path, typer.Option(help="alias table")] = BUNDLED_KNOWN_ENTITIES,
    analysis: Annotated[bool, typer.Option(help="evaluate the analysis profiles")] = True,
    search: Annotated[bool, typer.Option(help="also evaluate search through the archiver")] = True,
    limit: Annotated[int, typer.Option(help="at most this many documents per slice", min=0)] = 0,
    concurrency: Annotated[int, typer.Option(min=1, max=256)] = 16,
    wait_s: Annotated[float, typer.Option(help="how long to wait for the archiver")] = 900.0,
    embeddings: Annotated[
        list[str],
        typer.Option(help="also rank with this embedding model alone: model=M;query_prefix=…"),
    ] = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option(help="write the JSON here")] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="only print a saved run's tables as Markdown")
    ] = None,
) -> None:
    """Measure analysis and search quality on the labelled set (table, and JSON with --out)."""
    if markdown is not None:
        print(report.markdown(json.loads(markdown.read_text())))
        return
    try:
        evalset = load_eval_set(data)
        known = load_known_entities(known_entities)
        arms = build_arms(arm, model, profiles) if analysis else []
        if search and not arms:
            raise ConfigError(
                "search needs the analyses of an arm: drop --no-analysis or add --no-search"
            )
    except (EvalSetError, ConfigError, OSError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if limit:
        evalset = _limited(evalset, limit)
    targets = Targets(
        _env("SIFT_GATEWAY_URL", "http://127.0.0.1:8100"),
        _env("SIFT_ARCHIVER_URL", "http://127.0.0.1:8130"),
        _env("SIFT_API_KEY", "dev-key"),
        _env("SIFT_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        os.environ.get("SIFT_NAMESPACE", ""),
        os.environ.get("SIFT_GATEWAY_API_KEY") or None,
    )
    body = asyncio.run(
        evaluate(
            evalset, arms, known, targets, concurrency=concurrency, search=search, wait_s=wait_s
        )
    )
    if embeddings:
        body["retrieval"] = asyncio.run(_retrieval(evalset, embeddings, targets))
    result = report.envelope(body)
    report.print_arms(Console(), result["arms"])
    if "search" in result:
        report.print_search(Console(), result["search"])
    report.print_retrieval(Console(), result.get("retrieval", []))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        console.print(f"wrote {out}")


def _limited(evalset: EvalSet, limit: int) -> EvalSet:
    kept, seen = [], dict[str, int]()
    for doc in evalset.documents:
        slice_ = f"{doc.language}-{doc.kind}"
        if seen.get(slice_, 0) < limit:
            kept.append(doc)
            seen[slice_] = seen.get(slice_, 0) + 1
    ids = {doc.id for doc in kept}
    queries = [q for q in evalset.queries if set(q.relevant) <= ids]
    return EvalSet(documents=kept, queries=queries)


def main() -> None:
    typer.run(eval_command)
