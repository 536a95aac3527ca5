"""Analyses of the labelled documents through the gateway, with the analyzer's own code.

The prompt (`core.document_messages`), the schema check and single repair (`StructuredLlm`)
and the entity selection (`core.analysis_of`) are the very functions the analyzer runs, so a
number here is what the pipeline delivers for the same model and profiles.
"""

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sift_analyzer import core
from sift_analyzer.entities import KnownEntities
from sift_analyzer.evaluation.dataset import EvalDocument
from sift_analyzer.evaluation.scoring import DocRecord
from sift_analyzer.llm import OutputFailedError, StructuredLlm, Usage
from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.profiles import DocumentProfile, Profiles
from sift_common.contracts import Analysis
from sift_common.errors import InvalidMessageError
from sift_common.gateway_client import GatewayClient, GatewayUnavailableError

TRANSIENT_TRIES = 4


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: analysis profiles, a model profile, the entity checks."""

    name: str
    profiles: Profiles
    model: str | None = None  # the gateway model profile; None: each profile's own
    entity_checks: bool = True

    def profile(self, doc: EvalDocument) -> DocumentProfile:
        profile = self.profiles.for_kind(doc.kind)
        return profile.model_copy(update={"model": self.model}) if self.model else profile


@dataclass
class ArmRun:
    arm: Arm
    records: list[DocRecord]
    analyses: dict[str, Analysis]  # by eval document id, for the search part
    seconds: float


async def run_arm(
    arm: Arm,
    docs: list[EvalDocument],
    gateway: GatewayClient,
    known: KnownEntities,
    *,
    concurrency: int,
    progress: Callable[[], None] = lambda: None,
) -> ArmRun:
    llm = StructuredLlm(gateway, AnalyzerMetrics())
    slots = asyncio.Semaphore(concurrency)
    analyses: dict[str, Analysis] = {}
    # Request ids of their own per run: the gateway answers a repeated id and body from the
    # earlier call's answer (its retry replay), which would time nothing and repeat one sample.
    run_id = uuid.uuid4().hex[:8]

    async def one(doc: EvalDocument) -> DocRecord:
        async with slots:
            record, analysis = await _analyse(arm, doc, llm, known, run_id)
        if analysis is not None:
            analyses[doc.id] = analysis
        progress()
        return record

    started = time.perf_counter()
    records = await asyncio.gather(*(one(doc) for doc in docs))
    return ArmRun(arm, list(records), analyses, time.perf_counter() - started)


async def _analyse(
    arm: Arm, doc: EvalDocument, llm: StructuredLlm, known: KnownEntities, run_id: str
) -> tuple[DocRecord, Analysis | None]:
    profile, document = arm.profile(doc), doc.document()
    messages = core.document_messages(profile, document)
    started = time.perf_counter()
    for attempt in range(TRANSIENT_TRIES):
        try:
            answer = await llm.ask(
                profile,
                profile.analysis_type,
                messages,
                priority="normal",
                request_id=f"eval:{run_id}:{doc.id}:{attempt}",
            )
            break
        except OutputFailedError as exc:
            return _failed(doc, exc.usage, started, exc), None
        except InvalidMessageError as exc:  # the gateway refused the request (a 4xx)
            return _failed(doc, Usage(calls=1), started, exc), None
        except GatewayUnavailableError:
            if attempt == TRANSIENT_TRIES - 1:
                raise
            await asyncio.sleep(2**attempt)
    seconds = time.perf_counter() - started
    unchecked = _unchecked(profile, answer.result, answer.model)
    if arm.entity_checks:
        analysis, refused = core.analysis_of(profile, document, answer.result, answer.model, known)
    else:  # the behaviour before the entity checks: the model's mentions as it said them
        analysis, refused = unchecked, Counter[str]()
    sentiment = answer.result.get("sentiment")
    record = DocRecord(
        doc,
        valid_first=not answer.repaired,
        valid=True,
        calls=answer.usage.calls,
        prompt_tokens=answer.usage.prompt_tokens,
        completion_tokens=answer.usage.completion_tokens,
        seconds=seconds,
        sentiment=sentiment if isinstance(sentiment, str) else _sentiment_of(analysis.score),
        score=analysis.score,
        entities=list(analysis.entities),
        unchecked=list(unchecked.entities),
        refused=refused,
    )
    return record, analysis


def _failed(doc: EvalDocument, usage: Usage, started: float, error: Exception) -> DocRecord:
    return DocRecord(
        doc, False, False, usage.calls, usage.prompt_tokens, usage.completion_tokens,
        time.perf_counter() - started, error=str(error)[:300],
    )  # fmt: skip


def _unchecked(profile: DocumentProfile, result: dict[str, object], model: str) -> Analysis:
    return Analysis(
        analysis_type=profile.analysis_type,
        prompt_version=profile.prompt_version,
        model=model,
        score=core.overall_score(profile, dict(result)),
        result=dict(result),
        entities=core.mentions(profile.entities, dict(result)),
    )


def _sentiment_of(score: float | None) -> str | None:
    """A profile without a sentiment field (the old review profile) is read off its score."""
    if score is None:
        return None
    return "positive" if score >= 60 else "negative" if score <= 40 else "mixed"
