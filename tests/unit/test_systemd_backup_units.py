"""deploy/systemd/sift-backup.{service,timer}: a nightly `sift backup` then the request-log
prune, the prune only after a successful backup, dumps private, and commands the CLIs accept."""

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sift_archiver.cli import app
from sift_common.store.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
SERVICE = UNITS / "sift-backup.service"
TIMER = UNITS / "sift-backup.timer"


def _read(path: Path) -> configparser.ConfigParser:
    # ExecStart repeats in a oneshot unit: keep every value, joined by newlines.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    lines: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            parser.add_section(section)
        elif line and not line.startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            lines.setdefault((section, key), []).append(value)
    for (section, key), values in lines.items():
        parser[section][key] = "\n".join(values)
    return parser


def _exec_starts() -> list[list[str]]:
    return [shlex.split(line) for line in _read(SERVICE)["Service"]["ExecStart"].splitlines()]


def test_the_timer_starts_the_service_nightly_and_catches_up_after_downtime() -> None:
    timer = _read(TIMER)
    assert TIMER.with_suffix(".service") == SERVICE, "a timer starts the service of its name"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        calendar = subprocess.run(
            [analyze, "calendar", "--iterations=2", timer["Timer"]["OnCalendar"]],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "Iter. #2" in calendar.stdout, "the schedule repeats"


def test_backup_runs_first_and_the_prune_only_after_it() -> None:
    """A oneshot unit's ExecStart lines run in order and stop at the first failure."""
    service = _read(SERVICE)["Service"]
    assert service["Type"] == "oneshot"
    backup, prune = _exec_starts()
    assert (Path(backup[0]).name, backup[1]) == ("sift", "backup")
    assert (Path(prune[0]).name, prune[1]) == ("sift-db", "prune-request-logs")


def test_the_dumps_stay_private_and_in_a_directory_the_unit_may_write() -> None:
    service = _read(SERVICE)["Service"]
    assert service["UMask"] == "0077"
    assert "SIFT_BACKUP_DIR=/var/lib/" + service["StateDirectory"] in service["Environment"]
    assert service["StateDirectoryMode"] == "0700"


def test_the_commands_take_the_units_arguments() -> None:
    backup, prune = _exec_starts()
    help_text = CliRunner().invoke(app, ["backup", "--help"], terminal_width=200).output
    for option in (arg for arg in backup[2:] if arg.startswith("--")):
        assert option in help_text
    args = _parser().parse_args(prune[1:])
    assert args.older_than.days == 30


def test_systemd_reads_the_units_without_complaint(tmp_path: Path) -> None:
    """`systemd-analyze verify` where it exists. The checkout in /opt/sift is not on this
    machine; complaints about its missing programs are let through, nothing else."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    copies = []
    for unit in (SERVICE, TIMER):
        copies.append(tmp_path / unit.name)
        copies[-1].write_text(unit.read_text())
    checked = subprocess.run(
        [analyze, "verify", *map(str, copies)], capture_output=True, text=True, check=False
    )
    complaints = [
        line
        for line in (checked.stdout + checked.stderr).splitlines()
        if line.strip() and "/opt/sift/" not in line
    ]
    assert not complaints, complaints
