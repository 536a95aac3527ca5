"""`sift report`'s A/B section: every alias under a split during the window, arm by arm.

A test runs from its alias's latest `split` record to the switch or promotion that ended it
(or to now), and is reported when it was still running at the window's start or later; its
numbers are counted inside both the test and the window. An arm is the profile that served:

- requests (`gateway.request_logs` rows that asked for the alias): requests, errors, share of
  the test's requests, prompt and completion tokens, latency p50/p95 of answered requests, and
  `repairs`, the analyzer's repair turns (request ids ending `:repair`, asked for when the
  first answer failed its schema);
- analyses the arm produced (`analyses.gateway_profile`, revision 0007): how many, how many
  needed the repair, the share valid at the first try, the score's mean, p10, p50 and p90. An
  answer still invalid after its repair is not stored (its document is dead-lettered), so the
  share is over stored analyses; `repairs` counts every repair turn, stored or not.
"""

from datetime import datetime
from typing import Any

import asyncpg
import orjson

TESTS_SQL = """
SELECT s.alias, s.numbers -> 'weights' AS weights, s.at AS started,
       e.at AS ended, e.outcome AS ended_by, e.to_profile AS ended_on
FROM (
    SELECT DISTINCT ON (alias) id, alias, numbers, at
    FROM gateway.alias_switches WHERE outcome = 'split' ORDER BY alias, id DESC
) AS s
LEFT JOIN LATERAL (
    SELECT at, outcome, to_profile FROM gateway.alias_switches AS x
    WHERE x.alias = s.alias AND x.id > s.id AND x.outcome IN ('switched', 'promoted')
    ORDER BY x.id LIMIT 1
) AS e ON true
WHERE e.at IS NULL OR e.at >= $1
ORDER BY s.alias
"""

# $1 the alias, [$2, $3) the part of the test inside the window.
ARM_REQUESTS_SQL = """
SELECT
    profile AS arm,
    count(*) AS requests,
    count(*) FILTER (WHERE NOT answered) AS errors,
    count(*) FILTER (WHERE answered AND request_id LIKE '%:repair') AS repairs,
    coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
    coalesce(sum(completion_tokens), 0) AS completion_tokens,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
        FILTER (WHERE answered) AS latency_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
        FILTER (WHERE answered) AS latency_p95
FROM (
    SELECT *, status_code < 400 AND error IS NULL AS answered
    FROM gateway.request_logs
    WHERE model = $1 AND created_at >= $2 AND created_at < $3
) AS logged
GROUP BY profile
"""

# $1 the arms, [$2, $3) as above.
ARM_ANALYSES_SQL = """
SELECT
    gateway_profile AS arm,
    count(*) AS analyses,
    count(*) FILTER (WHERE repaired) AS repaired,
    count(*) FILTER (WHERE repaired IS NOT NULL) AS repair_known,
    avg(score) AS score_mean,
    percentile_cont(0.1) WITHIN GROUP (ORDER BY score) AS score_p10,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY score) AS score_p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY score) AS score_p90
FROM analyses
WHERE gateway_profile = ANY($1::text[]) AND created_at >= $2 AND created_at < $3
GROUP BY gateway_profile
"""

REQUEST_NUMBERS = ("requests", "errors", "repairs", "prompt_tokens", "completion_tokens")
ANALYSIS_NUMBERS = ("analyses", "repaired")
MEASURES = ("latency_p50", "latency_p95", "score_mean", "score_p10", "score_p50", "score_p90")


async def ab_tests(
    connection: asyncpg.Connection, start: datetime, now: datetime
) -> list[dict[str, Any]]:
    tests = []
    for record in await connection.fetch(TESTS_SQL, start):
        test = dict(record)
        weights: dict[str, int] = orjson.loads(test["weights"] or "{}")
        span = (max(start, test["started"]), test["ended"] or now)
        requests = await connection.fetch(ARM_REQUESTS_SQL, test["alias"], *span)
        analyses = await connection.fetch(ARM_ANALYSES_SQL, sorted(weights), *span)
        tests.append(
            {
                "alias": test["alias"],
                "weights": weights,
                "started": test["started"].isoformat(),
                "ended": None if test["ended"] is None else test["ended"].isoformat(),
                "ended_by": test["ended_by"],
                "ended_on": test["ended_on"],
                "arms": arms(weights, requests, analyses),
            }
        )
    return tests


def arms(
    weights: dict[str, int], requests: list[asyncpg.Record], analyses: list[asyncpg.Record]
) -> list[dict[str, Any]]:
    """One row per arm, in name order: the weighted arms (zeros where nothing came), then any
    other profile that served the alias meanwhile (a fallback)."""
    by_arm: dict[str, dict[str, Any]] = {}
    for name in sorted(weights):
        by_arm[name] = {"arm": name, "weight": weights[name]}
    for record in [*requests, *analyses]:
        by_arm.setdefault(record["arm"], {"arm": record["arm"], "weight": 0}).update(record)
    total = sum(row.get("requests", 0) for row in by_arm.values())
    return [_finished(row, total) for row in by_arm.values()]


def _finished(row: dict[str, Any], total: int) -> dict[str, Any]:
    for key in (*REQUEST_NUMBERS, *ANALYSIS_NUMBERS):
        row[key] = int(row.get(key) or 0)
    for key in MEASURES:
        value = row.get(key)
        row[key] = None if value is None else round(float(value), 1)
    known = int(row.pop("repair_known", 0) or 0)
    row["error_rate"] = round(row["errors"] / row["requests"], 4) if row["requests"] else 0.0
    row["share"] = round(row["requests"] / total, 4) if total else 0.0
    first_time = (known - row["repaired"]) / known if known else None
    row["valid_first_time"] = None if first_time is None else round(first_time, 4)
    return row
