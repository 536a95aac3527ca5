"""`sift report` against a fresh, migrated store seeded with request-log and pipeline rows, and
the real broker holding dead letters made by the real consumer. The expected numbers
(percentiles, per-caller counts, error rates, document counts) are computed here from the
seeded rows, independently of the report's SQL; the table, JSON and CSV outputs all say them."""

import asyncio
import csv
import hashlib
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from click.testing import Result
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from scripts.processes import free_port
from sift_archiver.cli import app as sift
from sift_common.errors import InvalidMessageError
from sift_common.messaging.broker import publish_event
from sift_common.messaging.topology import ANALYZER_DOCUMENTS, Topology
from sift_common.store.migrate import upgrade
from tests.support.rabbit import running_consumer, sample_event, wait_until_ready

pytestmark = pytest.mark.integration

LANGUAGE, SHORT = "unsupported language: fr", "title too short"
NO_BROKER = f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # the store tests touch no DLQ


@dataclass(frozen=True)
class Log:
    profile: str
    caller: str | None
    status: int
    latency_ms: float
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    age: timedelta = timedelta(hours=1)

    @property
    def answered(self) -> bool:
        return self.status < 400 and self.error is None


def percentile(values: Sequence[float], q: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _logs() -> list[Log]:
    rng = random.Random(17)
    logs = [
        Log("main", "analyzer", 200, rng.uniform(50, 900), rng.uniform(5, 80), 40, 12)
        for _ in range(23)
    ]
    logs += [Log("main", "console", 200, rng.uniform(50, 900), None, 30, 9) for _ in range(4)]
    logs += [Log("vectors", "archiver", 200, rng.uniform(5, 40), None, 8) for _ in range(11)]
    logs += [
        Log("main", "analyzer", 503, 3.0, error="no replica available"),
        Log("main", "analyzer", 503, 4.0, error="no replica available"),
        Log("main", "analyzer", 504, 15_000.0, error="timed out"),
        Log("main", "batch", 429, 1.0, error="rate limit"),
        Log("main", "console", 200, 700.0, 30.0, 30, 3, error="upstream stalled"),
        Log("-", None, 404, 0.5, error="model 'nope' not found"),
    ]
    # Outside a 24 h window, inside 7 d: a 24 h report must not see them.
    logs += [Log("main", "old-caller", 200, 99.0, 9.0, 1, 1, age=timedelta(days=2))] * 3
    return logs


def _doc_id(n: int) -> str:
    return hashlib.sha256(f"doc-{n}".encode()).hexdigest()


async def _seed(url: str, logs: list[Log], now: datetime) -> None:
    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        await connection.executemany(
            "INSERT INTO gateway.request_logs (request_id, profile, model, status_code,"
            " latency_ms, ttft_ms, prompt_tokens, completion_tokens, error, caller, created_at)"
            " VALUES ($1, $2, 'chat', $3, $4, $5, $6, $7, $8, $9, $10)",
            [
                (f"r{i}", log.profile, log.status, log.latency_ms, log.ttft_ms,
                 log.prompt_tokens, log.completion_tokens, log.error, log.caller, now - log.age)
                for i, log in enumerate(logs)
            ],
        )  # fmt: skip
        await _seed_pipeline(connection, now)
    finally:
        await connection.close()


async def _seed_pipeline(connection: asyncpg.Connection, now: datetime) -> None:
    """8 documents: 0-4 collected and stored 2 h ago, 5 collected 30 h ago and stored 2 h ago,
    6-7 collected and stored 3 d ago. Analyses of 0, 1, 2 (two for 0) now, of 6 three days
    ago; embeddings of 0 and 1 (two chunks each) and 6; one digest now, one 3 d ago."""
    recent, day_old, old = (
        now - timedelta(hours=2),
        now - timedelta(hours=30),
        now - timedelta(days=3),
    )
    times = [(recent, recent)] * 5 + [(day_old, recent)] + [(old, old)] * 2
    await connection.executemany(
        "INSERT INTO documents (id, content_hash, source, body, collected_at, stored_at)"
        " VALUES ($1, $1, 'test', 'body', $2, $3)",
        [(_doc_id(n), collected, stored) for n, (collected, stored) in enumerate(times)],
    )
    await connection.executemany(
        "INSERT INTO analyses (document_id, analysis_type, prompt_version, model, result,"
        " created_at) VALUES ($1, $2, 'v1', 'chat', '{}'::jsonb, $3)",
        [(_doc_id(0), "sentiment", now), (_doc_id(0), "summary", now),
         (_doc_id(1), "sentiment", now), (_doc_id(2), "sentiment", now),
         (_doc_id(6), "sentiment", old)],
    )  # fmt: skip
    vector = "[" + ",".join(["0.1"] * 384) + "]"
    await connection.executemany(
        "INSERT INTO embeddings (document_id, chunk_index, char_start, char_end, model,"
        " embedding) VALUES ($1, $2, 0, 4, 'embed', $3::vector)",
        [(_doc_id(d), c, vector) for d in (0, 1) for c in (0, 1)] + [(_doc_id(6), 0, vector)],
    )
    entity = await connection.fetchval(
        "INSERT INTO entities (kind, name, normalized_name) VALUES ('company', 'A', 'a')"
        " RETURNING id"
    )
    await connection.executemany(
        "INSERT INTO entity_digests (entity_id, digest_type, summary, details, document_count,"
        " model, prompt_version, created_at) VALUES ($1, 'news', 's', '{}'::jsonb, 1, 'chat',"
        " 'v1', $2)",
        [(entity, now), (entity, old)],
    )


EXPECTED_PIPELINE = {
    "collected": 5,
    "archived": 6,
    "analysed": 3,
    "analyses": 4,
    "embedded": 2,
    "digests": 1,
}


@dataclass(frozen=True)
class Seeded:
    env: dict[str, str]
    logs: list[Log]

    def window(self) -> list[Log]:
        return [log for log in self.logs if log.age < timedelta(hours=24)]


async def _dead_letters(rabbit_url: str, topology: Topology) -> None:
    """3 + 2 dead letters in analyzer.documents' DLQ, refused by the real consumer."""
    events = [sample_event(f"Langue {n}") for n in range(3)]
    events += [sample_event(f"Sh{n}") for n in range(2)]

    async def refuse(event: Any) -> None:
        title = event.document.title or ""
        raise InvalidMessageError(LANGUAGE if "Langue" in title else SHORT)

    async with running_consumer(rabbit_url, topology, ANALYZER_DOCUMENTS, refuse) as broker:
        for event in events:
            await publish_event(broker, topology, event)
        await wait_until_ready(rabbit_url, topology.dead_letter_queue(ANALYZER_DOCUMENTS), 5)


@pytest.fixture
async def seeded(fresh_database: str, rabbit_url: str, namespace: str) -> Seeded:
    await upgrade(fresh_database)
    logs = _logs()
    await _seed(fresh_database, logs, datetime.now(UTC))
    await _dead_letters(rabbit_url, Topology(namespace))
    env = {
        "SIFT_DATABASE_URL": fresh_database,
        "SIFT_RABBIT_URL": rabbit_url,
        "SIFT_NAMESPACE": namespace,
        "COLUMNS": "250",
    }
    return Seeded(env, logs)


async def report(env: dict[str, str], *args: str) -> Result:
    """`sift report ...` in-process (the `sift` Typer app), off the event loop."""
    return await asyncio.to_thread(CliRunner().invoke, sift, ["report", *args], env=env)


def expected_group(logs: list[Log]) -> dict[str, Any]:
    answered = [log for log in logs if log.answered]
    latencies = [log.latency_ms for log in answered]
    ttfts = [log.ttft_ms for log in answered if log.ttft_ms is not None]
    errors = sum(1 for log in logs if not log.answered)
    expected: dict[str, Any] = {
        "requests": len(logs),
        "errors": errors,
        "error_rate": round(errors / len(logs), 4),
        "prompt_tokens": sum(log.prompt_tokens or 0 for log in logs),
        "completion_tokens": sum(log.completion_tokens or 0 for log in logs),
        "ttft_n": len(ttfts),
    }
    for q in (0.5, 0.95, 0.99):
        expected[f"latency_p{round(q * 100)}"] = percentile(latencies, q)
        expected[f"ttft_p{round(q * 100)}"] = percentile(ttfts, q)
    return expected


def assert_group(got: dict[str, Any], logs: list[Log]) -> None:
    for metric, value in expected_group(logs).items():
        if isinstance(value, float) and metric != "error_rate":
            assert got[metric] == pytest.approx(value, abs=0.051), metric  # rounded to 0.1 ms
        else:
            assert got[metric] == value, metric


async def test_json_report_says_what_the_seeded_rows_say(seeded: Seeded) -> None:
    result = await report(seeded.env, "--since", "24h", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    logs = seeded.window()
    assert_group(data["llm"]["total"], logs)
    profiles = {row["name"]: row for row in data["llm"]["by_profile"]}
    assert set(profiles) == {"main", "vectors", "-"}
    for name, row in profiles.items():
        assert_group(row, [log for log in logs if log.profile == name])
    callers = {row["name"]: row for row in data["llm"]["by_caller"]}
    assert set(callers) == {"analyzer", "console", "archiver", "batch", None}
    for name, row in callers.items():
        assert_group(row, [log for log in logs if log.caller == name])
    assert callers["analyzer"]["requests"] == 26
    errors = {(row["kind"], row["status_class"]): row for row in data["errors"]}
    expected_errors = {
        ("unavailable", "5xx"): 2, ("timeout", "5xx"): 1, ("rate_limited", "4xx"): 1,
        ("stream_interrupted", "2xx"): 1, ("not_found", "4xx"): 1,
    }  # fmt: skip
    assert {key: row["requests"] for key, row in errors.items()} == expected_errors
    assert errors[("unavailable", "5xx")]["rate"] == round(2 / len(logs), 4)
    assert data["pipeline"] == EXPECTED_PIPELINE
    letters = data["dead_letters"]
    assert letters["available"] is True
    assert letters["dead_lettered"] == 5
    assert letters["top_reasons"][0]["count"] == 3
    assert LANGUAGE in letters["top_reasons"][0]["reason"]
    assert SHORT in letters["top_reasons"][1]["reason"]
    queue = next(q for q in letters["queues"] if q["queue"] == ANALYZER_DOCUMENTS.name)
    assert (queue["depth"], queue["dead_lettered"]) == (5, 5)


async def test_a_longer_window_sees_older_rows(seeded: Seeded) -> None:
    data = json.loads((await report(seeded.env, "--since", "7d", "--json")).output)
    assert_group(data["llm"]["total"], seeded.logs)
    assert any(row["name"] == "old-caller" for row in data["llm"]["by_caller"])
    assert data["pipeline"]["collected"] == 8
    assert data["pipeline"]["digests"] == 2
    short = json.loads((await report(seeded.env, "--since", "30m", "--json")).output)
    assert short["llm"]["total"]["requests"] == 0
    assert short["pipeline"] == dict.fromkeys(EXPECTED_PIPELINE, 0) | {
        "digests": 1,
        "analyses": 4,
        "analysed": 3,
    }


async def test_csv_report_carries_the_same_numbers(seeded: Seeded) -> None:
    result = await report(seeded.env, "--since", "24h", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    cell = {(r["section"], r["group"], r["name"], r["metric"]): r["value"] for r in rows}
    logs = seeded.window()
    analyzer = expected_group([log for log in logs if log.caller == "analyzer"])
    assert int(cell[("llm", "caller", "analyzer", "requests")]) == analyzer["requests"]
    assert float(cell[("llm", "caller", "analyzer", "latency_p95")]) == pytest.approx(
        analyzer["latency_p95"], abs=0.051
    )
    main = expected_group([log for log in logs if log.profile == "main"])
    assert float(cell[("llm", "profile", "main", "ttft_p99")]) == pytest.approx(
        main["ttft_p99"], abs=0.051
    )
    assert int(cell[("llm", "caller", "(no key)", "requests")]) == 1
    assert int(cell[("errors", "5xx", "unavailable", "requests")]) == 2
    assert int(cell[("pipeline", "", "", "archived")]) == EXPECTED_PIPELINE["archived"]
    assert int(cell[("dead_letters", "", "", "dead_lettered")]) == 5


async def test_table_report_shows_profiles_callers_and_reasons(seeded: Seeded) -> None:
    result = await report(seeded.env)  # --since defaults to 24h
    assert result.exit_code == 0, result.output
    out = result.output
    main = expected_group([log for log in seeded.window() if log.profile == "main"])
    for text in ("main", "vectors", "analyzer", "archiver", "(no key)", "unavailable",
                 f"{main['latency_p95']:,.1f}", LANGUAGE, "archived"):  # fmt: skip
        assert text in out, text
    assert "old-caller" not in out


@pytest.mark.parametrize("since", ["24", "1w", "0h", "24 hours", "-1h", "1.5h"])
async def test_since_refuses_anything_but_minutes_hours_days(since: str) -> None:
    result = await report({"COLUMNS": "250"}, "--since", since)
    assert result.exit_code == 2
    assert "--since" in result.output
    assert "30m, 24h, 7d" in result.output


async def test_an_unreachable_broker_is_reported_and_the_rest_still_prints(
    seeded: Seeded,
) -> None:
    env = {**seeded.env, "SIFT_RABBIT_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    result = await report(env, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dead_letters"]["available"] is False
    assert "cannot reach RabbitMQ" in data["dead_letters"]["error"]
    assert data["llm"]["total"]["requests"] == len(seeded.window())
    table = await report(env)
    assert "Dead letters: unknown, cannot reach RabbitMQ" in table.output
    assert "analyzer" in table.output


async def test_an_unreachable_store_fails_naming_the_variable(tmp_path: Any) -> None:
    env = {
        "SIFT_DATABASE_URL": f"postgresql://sift@/sift?host={tmp_path}",
        "SIFT_RABBIT_URL": NO_BROKER,
    }
    result = await report(env, "--json")
    assert result.exit_code == 2
    assert "SIFT_DATABASE_URL" in result.output


async def test_a_store_before_revision_0004_asks_for_the_upgrade(fresh_database: str) -> None:
    await upgrade(fresh_database, "0003")
    env = {"SIFT_DATABASE_URL": fresh_database, "SIFT_RABBIT_URL": NO_BROKER, "COLUMNS": "250"}
    result = await report(env, "--json")
    assert result.exit_code == 2
    assert "sift-db upgrade" in result.output


async def test_json_and_csv_at_once_are_refused() -> None:
    result = await report({"COLUMNS": "250"}, "--json", "--csv")
    assert result.exit_code == 2
    assert "--json" in result.output
    assert "--csv" in result.output
