"""`sift doctor`'s table: grouped by area, each fix under its finding, the verdict last."""

from rich.console import Console

from sift_common.ops.doctor import render
from sift_common.ops.doctor_model import Finding, report


def test_the_table_groups_by_area_and_shows_the_fix() -> None:
    findings = [
        Finding(area="host", name="disk", status="ok", what="12% used"),
        Finding(area="queues", name="analyzer.documents", status="fail",
                what="3 ready, 0 consumer(s)", fix="docker compose up -d analyzer"),
    ]  # fmt: skip
    console = Console(record=True, width=160)
    render(report(findings), console)
    text = console.export_text()
    assert text.index("queues") < text.index("host")  # areas in their fixed order
    assert "→ docker compose up -d analyzer" in text
    assert text.rstrip().endswith("fail: something needs a person")


def test_warnings_alone_need_nobody() -> None:
    console = Console(record=True, width=160)
    render(report([Finding(area="host", name="memory", status="warn", what="91% used")]), console)
    assert "warn: nothing needs a person" in console.export_text()
