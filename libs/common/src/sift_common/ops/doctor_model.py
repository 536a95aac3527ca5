"""What `sift doctor` reports: findings, each judged ok / warn / fail / skip, and the exit code.

`skip` is a check that could not be made for a reason that is not a fault (no admin key given,
no profiles file named, no database URL): reported with the variable that enables it, never
counted against the exit code. A target that cannot be reached is a `fail`, not a skip.
"""

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "warn", "fail", "skip"]
Area = Literal["services", "queues", "engines", "breakers", "host", "requests"]
AREAS: tuple[Area, ...] = ("services", "queues", "engines", "breakers", "host", "requests")

EXIT_OK = 0
"""Nothing needs a person: every finding is ok, warn or skip."""
EXIT_FAIL = 1
"""At least one finding is `fail`: something needs a person now."""

_RANK: dict[Status, int] = {"skip": 0, "ok": 1, "warn": 2, "fail": 3}


class Finding(BaseModel):
    area: Area
    name: str = Field(description="What was checked: a service, a queue, an engine URL, ...")
    status: Status
    what: str = Field(description="One line: what the check saw.")
    fix: str | None = Field(
        default=None, description="For warn and fail: the command that fixes or diagnoses it."
    )


class DoctorReport(BaseModel):
    """The `--json` output."""

    status: Status = Field(description="The worst finding's status.")
    exit_code: int
    findings: list[Finding]


def worst(findings: list[Finding]) -> Status:
    return max((finding.status for finding in findings), key=_RANK.__getitem__, default="ok")


def exit_code(findings: list[Finding]) -> int:
    """1 when any finding fails, else 0: a warning is for the next look, not for a page."""
    return EXIT_FAIL if any(finding.status == "fail" for finding in findings) else EXIT_OK


def report(findings: list[Finding]) -> DoctorReport:
    order = {area: index for index, area in enumerate(AREAS)}
    ordered = sorted(findings, key=lambda finding: order[finding.area])  # stable within an area
    return DoctorReport(status=worst(ordered), exit_code=exit_code(ordered), findings=ordered)
