"""`sift doctor`'s judging of the services and the queues: readings in, findings out, no I/O.

A reading that carries an `error` is a probe that could not reach its target: that is a finding
of its own (naming the variable that points at the target), never an exception.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sift_common.messaging.dlq import DeadLetter, format_age, top_reasons
from sift_common.ops.doctor_model import Finding
from sift_common.service.readiness import ReadinessReport

DLQ_GROWING_WINDOW = timedelta(hours=1)
"""A DLQ holding a dead letter younger than this is growing: documents are failing now, and
that needs a person (fail). Older dead letters alone are a standing backlog to replay or purge
when convenient (warn)."""
MAX_REASON_CHARS = 80
OLDEST_UNKNOWN = "oldest message's age unknown (AMQP cannot show a quorum queue's head)"


@dataclass(frozen=True)
class ReadinessReading:
    """One service's `GET /health/ready`."""

    service: str  # its docker compose name: collector, analyzer, archiver, gateway
    variable: str  # the variable holding its URL
    url: str
    status_code: int | None = None
    report: ReadinessReport | None = None
    error: str | None = None  # unreachable, or an answer that is not a readiness report


@dataclass(frozen=True)
class QueueReading:
    """A work queue, read with a passive declare; None: not declared on the broker."""

    queue: str  # the bare consumer-queue name, e.g. analyzer.documents
    work_queue: str  # as declared (namespaced)
    messages: int | None
    consumers: int | None


@dataclass(frozen=True)
class DlqReading:
    """A DLQ's depth and the dead letters read from its head (every one put back)."""

    queue: str
    dlq: str
    depth: int | None  # None: not declared
    letters: Sequence[DeadLetter] = field(default_factory=tuple)


def owner(queue: str) -> str:
    """The service consuming a queue (its compose name): `analyzer.documents` → analyzer."""
    return queue.split(".", 1)[0]


def service_fix(service: str) -> str:
    return f"docker compose ps {service} && docker compose logs --tail 100 {service}"


def judge_readiness(reading: ReadinessReading) -> Finding:
    name, url = reading.service, f"{reading.url}/health/ready"
    if reading.error is not None or reading.report is None:
        return Finding(
            area="services",
            name=name,
            status="fail",
            what=f"cannot read {url} ({reading.error}); is {reading.variable} right?",
            fix=service_fix(name),
        )
    report = reading.report
    failing = [(check, result) for check, result in report.checks.items() if not result.ok]
    named = "; ".join(f"{check}: {result.error}" for check, result in failing)
    if report.status == "draining":
        return Finding(
            area="services",
            name=name,
            status="warn",
            what="draining: shutting down, taking no new work",
            fix=service_fix(name),
        )
    if report.status == "not_ready":
        return Finding(
            area="services",
            name=name,
            status="fail",
            what=f"not ready (HTTP {reading.status_code}): {named}",
            fix=service_fix(name),
        )
    if failing:  # ready, but an advisory check fails
        return Finding(
            area="services",
            name=name,
            status="warn",
            what=f"ready; advisory checks failing: {named}",
            fix=service_fix(name),
        )
    return Finding(
        area="services", name=name, status="ok", what=f"ready ({len(report.checks)} checks pass)"
    )


def judge_queue(reading: QueueReading) -> Finding:
    name, service = reading.work_queue, owner(reading.queue)
    start = f"docker compose up -d {service} && docker compose logs --tail 100 {service}"
    if reading.messages is None:
        return Finding(
            area="queues",
            name=name,
            status="warn",
            what=f"not declared on the broker: {service} has not started here",
            fix=start,
        )
    consumers = reading.consumers or 0
    counts = f"{reading.messages} ready, {consumers} consumer(s)"
    if reading.messages > 0 and consumers == 0:
        return Finding(
            area="queues",
            name=name,
            status="fail",
            what=f"{counts}: nothing consumes it ({service} is down)",
            fix=start,
        )
    return Finding(area="queues", name=name, status="ok", what=f"{counts}; {OLDEST_UNKNOWN}")


def judge_dlq(reading: DlqReading, now: datetime) -> Finding | None:
    """None for a DLQ that is not declared (its work queue's finding says why)."""
    if reading.depth is None:
        return None
    name = reading.dlq
    if reading.depth == 0:
        return Finding(area="queues", name=name, status="ok", what="no dead letters")
    recent = [
        letter
        for letter in reading.letters
        if (age := letter.age(now)) is not None and age < DLQ_GROWING_WINDOW
    ]
    summary = _dlq_summary(reading, now)
    see = f"sift dlq list --queue {reading.queue}"
    if recent:
        return Finding(
            area="queues",
            name=name,
            status="fail",
            what=f"growing: {len(recent)} new within {format_age(DLQ_GROWING_WINDOW)}; {summary}",
            fix=f"{see}; fix the cause, then sift dlq replay --queue {reading.queue}",
        )
    return Finding(
        area="queues",
        name=name,
        status="warn",
        what=summary,
        fix=f"{see}; then sift dlq replay (or purge --yes) --queue {reading.queue}",
    )


def _dlq_summary(reading: DlqReading, now: datetime) -> str:
    reasons = ", ".join(
        f"{reason[:MAX_REASON_CHARS]} ({count})" for reason, count in top_reasons(reading.letters)
    )
    dated = [age for letter in reading.letters if (age := letter.age(now)) is not None]
    oldest = f"oldest {format_age(max(dated))} ago" if dated else "oldest's age unknown"
    read = len(reading.letters)
    unseen = f" (read {read} of {reading.depth})" if read < (reading.depth or 0) else ""
    return f"{reading.depth} dead letter(s), {oldest}; top reasons: {reasons or '-'}{unseen}"
