"""`sift doctor`'s judging: readings in, findings out (no services)."""

from datetime import UTC, datetime, timedelta

from sift_common.messaging.dlq import DeadLetter
from sift_common.ops.doctor_checks import (
    DlqReading,
    QueueReading,
    ReadinessReading,
    judge_dlq,
    judge_queue,
    judge_readiness,
)
from sift_common.ops.doctor_model import Finding, exit_code, report
from sift_common.service.readiness import CheckResult, ReadinessReport

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def letter(reason: str, age: timedelta | None) -> DeadLetter:
    return DeadLetter(
        dlq="analyzer.documents.dlq", message_id="m", correlation_id="d", kind="invalid",
        reason=reason, original_queue="analyzer.documents",
        dead_lettered_at=None if age is None else NOW - age,
        retry_count=0, replayed=0, body_size=10,
    )  # fmt: skip


def readiness(status: str, **checks: CheckResult) -> ReadinessReading:
    report = ReadinessReport.model_validate({"status": status, "checks": checks})
    code = 200 if status == "ready" else 503
    return ReadinessReading("analyzer", "SIFT_ANALYZER_URL", "http://h:1", code, report)


def test_a_ready_service_is_ok() -> None:
    finding = judge_readiness(readiness("ready", rabbit=CheckResult(ok=True)))
    assert finding.status == "ok"
    assert finding.fix is None


def test_a_not_ready_service_fails_naming_its_failing_check_and_a_fix() -> None:
    reading = readiness(
        "not_ready", rabbit=CheckResult(ok=False, error="no answer within 2 s"),
        redis=CheckResult(ok=True),
    )  # fmt: skip
    finding = judge_readiness(reading)
    assert finding.status == "fail"
    assert "rabbit: no answer within 2 s" in finding.what
    assert "redis" not in finding.what
    assert finding.fix is not None
    assert "docker compose logs" in finding.fix


def test_an_advisory_check_failing_only_warns() -> None:
    advisory = CheckResult(ok=False, error="writes failing", advisory=True)
    assert judge_readiness(readiness("ready", request_log=advisory)).status == "warn"


def test_an_unreachable_service_fails_naming_its_variable() -> None:
    reading = ReadinessReading("archiver", "SIFT_ARCHIVER_URL", "http://h:1", error="refused")
    finding = judge_readiness(reading)
    assert finding.status == "fail"
    assert "SIFT_ARCHIVER_URL" in finding.what
    assert "refused" in finding.what


def test_a_queue_with_messages_and_no_consumer_fails() -> None:
    finding = judge_queue(QueueReading("analyzer.documents", "analyzer.documents", 3, 0))
    assert finding.status == "fail"
    assert "3 ready, 0 consumer" in finding.what
    assert finding.fix is not None
    assert "docker compose up -d analyzer" in finding.fix


def test_a_consumed_or_empty_queue_is_ok_and_its_head_age_unknown() -> None:
    consumed = judge_queue(QueueReading("archiver.documents", "archiver.documents", 3, 1))
    idle = judge_queue(QueueReading("archiver.documents", "archiver.documents", 0, 0))
    assert consumed.status == idle.status == "ok"
    assert "unknown" in consumed.what


def test_an_undeclared_queue_warns_and_its_dlq_says_nothing() -> None:
    assert (
        judge_queue(QueueReading("collector.intake", "x.collector.intake", None, None)).status
        == "warn"
    )
    assert judge_dlq(DlqReading("collector.intake", "x.collector.intake.dlq", None), NOW) is None


def test_a_dlq_with_a_recent_dead_letter_is_growing_and_fails() -> None:
    letters = [letter("bad json", timedelta(hours=3)), letter("bad json", timedelta(minutes=5))]
    finding = judge_dlq(DlqReading("analyzer.documents", "analyzer.documents.dlq", 2, letters), NOW)
    assert finding is not None
    assert finding.status == "fail"
    assert "growing" in finding.what
    assert "bad json (2)" in finding.what
    assert "oldest 3h00m ago" in finding.what
    assert finding.fix is not None
    assert "sift dlq list --queue analyzer.documents" in finding.fix


def test_a_dlq_with_only_old_dead_letters_warns() -> None:
    letters = [letter("schema", timedelta(hours=5)), letter("other", None)]
    finding = judge_dlq(DlqReading("archiver.documents", "archiver.documents.dlq", 9, letters), NOW)
    assert finding is not None
    assert finding.status == "warn"
    assert "read 2 of 9" in finding.what
    assert "sift dlq replay" in (finding.fix or "")


def test_an_empty_dlq_is_ok() -> None:
    finding = judge_dlq(DlqReading("archiver.documents", "archiver.documents.dlq", 0), NOW)
    assert finding is not None
    assert finding.status == "ok"


def test_exit_code_is_one_on_a_fail_only() -> None:
    def finding(status: str) -> Finding:
        return Finding.model_validate({"area": "host", "name": "x", "status": status, "what": "w"})

    assert exit_code([finding("ok"), finding("warn"), finding("skip")]) == 0
    assert exit_code([finding("ok"), finding("fail")]) == 1
    result = report([finding("warn"), finding("skip")])
    assert result.status == "warn"
    assert result.exit_code == 0
