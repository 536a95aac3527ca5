"""Search quality of an embedding model on its own: the labelled documents and queries
embedded through the gateway and ranked by cosine, without a store. It compares embedding
models side by side (quality against speed) before one is adopted, which would need a new
vector size in the store; the archiver part of `sift eval` measures the store as it is."""

import math
import time
from dataclasses import dataclass
from typing import Any

from sift_analyzer.evaluation import scoring
from sift_analyzer.evaluation.dataset import EvalDocument, Query
from sift_common.gateway_client import GatewayClient

BATCH = 16
MAX_INPUT_TOKENS = 256  # what the smaller candidates take; longer texts are truncated


@dataclass(frozen=True)
class EmbeddingArm:
    """`model=M,query_prefix=…,document_prefix=…`: a gateway model profile and the prompts
    the model was trained with (e5: "query: " / "passage: ")."""

    model: str
    query_prefix: str = ""
    document_prefix: str = ""

    @classmethod
    def parse(cls, spec: str) -> "EmbeddingArm":
        fields = dict(part.split("=", 1) for part in spec.split(";") if "=" in part)
        if unknown := set(fields) - {"model", "query_prefix", "document_prefix"}:
            raise ValueError(f"unknown keys {sorted(unknown)} in --embeddings {spec!r}")
        return cls(fields.get("model") or spec, fields.get("query_prefix", ""),
                   fields.get("document_prefix", ""))  # fmt: skip


async def _vectors(
    gateway: GatewayClient, model: str, texts: list[str]
) -> tuple[list[list[float]], str]:
    vectors: list[list[float]] = []
    served = model
    for start in range(0, len(texts), BATCH):
        answer = await gateway.embeddings(
            texts[start : start + BATCH], model=model, truncate_prompt_tokens=MAX_INPUT_TOKENS
        )
        vectors += [_unit(v) for v in answer.vectors]
        served = answer.model
    return vectors, served


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def ranked_by_cosine(
    query_vectors: dict[str, list[float]], doc_vectors: dict[str, list[float]], k: int
) -> dict[str, list[str]]:
    out = {}
    for query_id, q in query_vectors.items():
        scores = {d: sum(a * b for a, b in zip(q, v, strict=True)) for d, v in doc_vectors.items()}
        out[query_id] = sorted(scores, key=lambda d: scores[d], reverse=True)[:k]
    return out


async def evaluate_embeddings(
    arm: EmbeddingArm, gateway: GatewayClient, docs: list[EvalDocument], queries: list[Query]
) -> dict[str, Any]:
    texts = [f"{arm.document_prefix}{doc.title or ''}\n{doc.body}" for doc in docs]
    started = time.perf_counter()
    doc_vectors, served = await _vectors(gateway, arm.model, texts)
    seconds = time.perf_counter() - started
    query_vectors, _ = await _vectors(
        gateway, arm.model, [arm.query_prefix + q.query for q in queries]
    )
    ranked = ranked_by_cosine(
        {q.id: v for q, v in zip(queries, query_vectors, strict=True)},
        {d.id: v for d, v in zip(docs, doc_vectors, strict=True)},
        k=10,
    )
    languages: dict[str, str] = {doc.id: doc.language for doc in docs}
    return {
        "model": arm.model,
        "served_model": served,
        "dimension": len(doc_vectors[0]) if doc_vectors else None,
        "document_texts_per_second": round(len(texts) / seconds, 2) if seconds else None,
        "groups": scoring.search_metrics(queries, ranked, languages),
    }
