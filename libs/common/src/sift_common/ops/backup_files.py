"""Backup file names and retention: which dumps in a directory are Sift's, which to delete.

A dump is `sift-<UTC timestamp>.dump`; the timestamp sorts as text, so the newest is the last
name, whatever the files' modification times say (a copy or a restore from tape changes
those). pg_dump writes to a hidden `.sift-<timestamp>.dump.partial` that is renamed only once
it succeeded: a partial file never matches the pattern, so it is never counted as a backup
nor kept in place of one.
"""

import re
from datetime import datetime
from pathlib import Path

BACKUP_DIR_VARIABLE = "SIFT_BACKUP_DIR"
DEFAULT_BACKUP_DIR = Path("backups")
DEFAULT_KEEP = 7

# Milliseconds: two backups within a second (a retry, a test) still get distinct names.
_NAME = re.compile(r"^sift-\d{8}T\d{6}\.\d{3}Z\.dump$")


def backup_name(at: datetime) -> str:
    """`sift-20261205T031500.123Z.dump` for an aware UTC datetime."""
    if at.utcoffset() is None or at.utcoffset():
        raise ValueError(f"backup times are UTC, got {at.isoformat()}")
    return f"sift-{at:%Y%m%dT%H%M%S}.{at.microsecond // 1000:03d}Z.dump"


def partial_name(final: str) -> str:
    """Where pg_dump writes before the rename: hidden, and not a backup's name."""
    return f".{final}.partial"


def is_backup_name(name: str) -> bool:
    return _NAME.match(name) is not None


def backups_in(directory: Path) -> list[Path]:
    """The Sift dumps in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(
        (path for path in directory.iterdir() if path.is_file() and is_backup_name(path.name)),
        key=lambda path: path.name,
    )


def to_delete(backups: list[Path], keep: int, just_written: Path) -> list[Path]:
    """The dumps retention deletes: all but the newest `keep`, never `just_written` (even if
    a clock set back made it sort older than the others)."""
    if keep < 1:
        raise ValueError(f"--keep must be at least 1, got {keep}")
    ordered = sorted(backups, key=lambda path: path.name)
    kept = {just_written}
    for path in reversed(ordered):
        if len(kept) >= keep:
            break
        kept.add(path)
    return [path for path in ordered if path not in kept]


def human_size(size: int) -> str:
    """`512 B`, `3.4 KiB`, `12.0 MiB`, `1.2 GiB`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
