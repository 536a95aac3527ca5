"""The SQL behind `sift report`: one round trip per section, percentiles computed by PostgreSQL.

Every query takes one parameter, `$1`, the start of the window (a timezone-aware datetime);
the window ends now. Latency and TTFT percentiles are over answered requests (status < 400,
no error) only: a refusal in 2 ms says nothing about how fast the models are. TTFT is NULL on rows
without a first-token time (embeddings; rows written before non-streamed chat was timed), and
`percentile_cont` skips NULLs, so `ttft_n` says how many requests the TTFT columns describe.
"""

from datetime import datetime
from typing import Any

import asyncpg

# Per profile, per caller and in total, in one scan (GROUPING SETS). `grouped_by` tells the
# three apart, since a NULL caller (an open gateway) is a group of its own.
LLM_SQL = """
SELECT
    CASE
        WHEN GROUPING(profile) = 0 THEN 'profile'
        WHEN GROUPING(caller) = 0 THEN 'caller'
        ELSE 'total'
    END AS grouped_by,
    CASE WHEN GROUPING(profile) = 0 THEN profile ELSE caller END AS name,
    count(*) AS requests,
    count(*) FILTER (WHERE status_code >= 400 OR error IS NOT NULL) AS errors,
    coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
    coalesce(sum(completion_tokens), 0) AS completion_tokens,
    count(ttft_ms) FILTER (WHERE answered) AS ttft_n,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
        FILTER (WHERE answered) AS latency_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
        FILTER (WHERE answered) AS latency_p95,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)
        FILTER (WHERE answered) AS latency_p99,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms)
        FILTER (WHERE answered) AS ttft_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY ttft_ms)
        FILTER (WHERE answered) AS ttft_p95,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY ttft_ms)
        FILTER (WHERE answered) AS ttft_p99
FROM (
    SELECT *, status_code < 400 AND error IS NULL AS answered
    FROM gateway.request_logs
    WHERE created_at >= $1
) AS logged
GROUP BY GROUPING SETS ((profile), (caller), ())
ORDER BY grouped_by, requests DESC, name
"""

# What went wrong, by kind. A stream that broke after its 200 was sent is logged with status
# 200 and an error: it failed all the same.
ERRORS_SQL = """
SELECT kind, status_class, requests, total
FROM (
    SELECT
        CASE
            WHEN status_code < 400 AND error IS NULL THEN NULL
            WHEN status_code < 400 THEN 'stream_interrupted'
            WHEN status_code = 499 THEN 'client_went_away'
            WHEN status_code = 429 THEN 'rate_limited'
            WHEN status_code IN (401, 403) THEN 'refused'
            WHEN status_code = 404 THEN 'not_found'
            WHEN status_code < 500 THEN 'bad_request'
            WHEN status_code = 503 THEN 'unavailable'
            WHEN status_code = 504 THEN 'timeout'
            ELSE 'upstream_error'
        END AS kind,
        (status_code / 100)::text || 'xx' AS status_class,
        count(*) AS requests,
        sum(count(*)) OVER () AS total
    FROM gateway.request_logs
    WHERE created_at >= $1
    GROUP BY 1, 2
) AS counted
WHERE kind IS NOT NULL
ORDER BY requests DESC, kind, status_class
"""

# What the store can tell. `collected`: documents stored whose collector timestamp falls in
# the window; `archived`: documents the archiver stored in the window; `analysed`: documents
# with an analysis written in the window (`analyses` counts the analyses themselves);
# `embedded`: documents archived in the window that have embeddings (embeddings carry no time
# of their own); `digests`: entity digests written in the window.
PIPELINE_SQL = """
SELECT
    (SELECT count(*) FROM documents WHERE collected_at >= $1) AS collected,
    (SELECT count(*) FROM documents WHERE stored_at >= $1) AS archived,
    (SELECT count(DISTINCT document_id) FROM analyses WHERE created_at >= $1) AS analysed,
    (SELECT count(*) FROM analyses WHERE created_at >= $1) AS analyses,
    (SELECT count(DISTINCT e.document_id) FROM embeddings AS e
        JOIN documents AS d ON d.id = e.document_id WHERE d.stored_at >= $1) AS embedded,
    (SELECT count(*) FROM entity_digests WHERE created_at >= $1) AS digests
"""


def _plain(record: asyncpg.Record) -> dict[str, Any]:
    row = dict(record)
    return {
        key: round(value, 1) if isinstance(value, float) else value for key, value in row.items()
    }


async def llm_rows(connection: asyncpg.Connection, since: datetime) -> list[dict[str, Any]]:
    return [_plain(record) for record in await connection.fetch(LLM_SQL, since)]


async def error_rows(connection: asyncpg.Connection, since: datetime) -> list[dict[str, Any]]:
    rows = []
    for record in await connection.fetch(ERRORS_SQL, since):
        row = dict(record)
        total = int(row.pop("total"))
        rows.append({**row, "rate": round(row["requests"] / total, 4) if total else 0.0})
    return rows


async def pipeline_counts(connection: asyncpg.Connection, since: datetime) -> dict[str, int]:
    record = await connection.fetchrow(PIPELINE_SQL, since)
    assert record is not None  # a SELECT without FROM always returns one row
    return {key: int(value) for key, value in dict(record).items()}
