"""A drop folder: `*.jsonl` (one record a line) and `*.json` (a record or a list) files.

Each record is an IncomingDocument; `source`, `kind` and `language` default to the source's.
Writers should write elsewhere (or under a hidden/other name) and rename into the folder, so a
half-written file is never read. Files are settled only after the scheduler published every
valid document of the poll and the broker confirmed them:

- every record valid and accepted → the file moves to `done/`;
- any record invalid (not JSON, fails the contract, or refused by normalisation) → the file
  moves to `failed/` with `<file>.reason` beside it listing each bad record; its valid records
  were still published (a fixed file dropped again is deduplicated by content);
- publishing raised → `after_publish` never runs and the file stays for the next poll.
"""

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sift_collector.sources.base import Cursor, Invalid, Poll, Rejection, SourceError
from sift_collector.sources.config import DirectorySourceConfig
from sift_common.contracts import IncomingDocument

PATTERNS = ("*.jsonl", "*.json")


@dataclass
class DroppedFile:
    path: Path
    documents: list[IncomingDocument] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _record(raw: Any, config: DirectorySourceConfig) -> IncomingDocument:
    if not isinstance(raw, dict):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    defaults: dict[str, Any] = {"source": config.name, "kind": config.kind}
    if config.language is not None:
        defaults["language"] = config.language
    return IncomingDocument.model_validate({**defaults, **raw})


def _records(path: Path, text: str) -> list[tuple[str, Any]]:
    """(where, parsed JSON) per record; raises ValueError for a .json file that is not JSON."""
    if path.suffix == ".json":
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
        return [(f"item {i + 1}", item) for i, item in enumerate(items)]
    records: list[tuple[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", json.loads(line)))
        except ValueError as exc:
            records.append((f"line {number}", exc))
    return records


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(record)'}: {error['msg']}"
            for error in exc.errors()
        )
    return str(exc)


def parse_dropped(path: Path, text: str, config: DirectorySourceConfig) -> DroppedFile:
    """The valid documents of one file and a line per bad record (pure)."""
    dropped = DroppedFile(path)
    try:
        records = _records(path, text)
    except ValueError as exc:
        dropped.problems.append(f"not JSON: {exc}")
        return dropped
    for where, raw in records:
        try:
            if isinstance(raw, Exception):
                raise raw
            dropped.documents.append(_record(raw, config))
        except ValueError as exc:  # ValidationError is a ValueError
            dropped.problems.append(f"{where}: {_reason(exc)}")
    return dropped


def _unique_target(folder: Path, name: str) -> Path:
    target = folder / name
    if target.exists():  # a file of that name was settled before: keep both
        target = folder / f"{Path(name).stem}.{time.time_ns()}{Path(name).suffix}"
    return target


def settle(dropped: DroppedFile, rejected: dict[int, str]) -> Path:
    """Move a published file to done/ or, with any bad record, to failed/ with its reasons."""
    problems = dropped.problems + [
        f"{document.external_id or document.url or 'record'}: {rejected[id(document)]}"
        for document in dropped.documents
        if id(document) in rejected
    ]
    folder = dropped.path.parent / ("failed" if problems else "done")
    folder.mkdir(exist_ok=True)
    target = _unique_target(folder, dropped.path.name)
    if problems:
        reason = target.with_name(target.name + ".reason")
        reason.write_text("\n".join(problems) + "\n", encoding="utf-8")
    dropped.path.replace(target)
    return target


class DirectorySource:
    def __init__(self, config: DirectorySourceConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def _scan(self) -> list[DroppedFile]:
        folder = self.config.path
        if not folder.is_dir():
            raise SourceError(f"{self.name}: drop folder {folder} does not exist")
        paths = sorted({p for pattern in PATTERNS for p in folder.glob(pattern) if p.is_file()})
        visible = [p for p in paths if not p.name.startswith((".", "~"))]
        return [
            parse_dropped(path, path.read_text(encoding="utf-8", errors="replace"), self.config)
            for path in visible[: self.config.max_files_per_poll]
        ]

    async def poll(self, cursor: Cursor) -> Poll:
        """The documents of the files waiting now; the files are settled after publishing."""
        files = await asyncio.to_thread(self._scan)
        documents = [document for dropped in files for document in dropped.documents]
        invalid = [Invalid(d.path.name, problem) for d in files for problem in d.problems]
        return Poll(documents, cursor, after_publish=partial(self._settle, files), invalid=invalid)

    async def _settle(self, files: list[DroppedFile], rejections: Sequence[Rejection]) -> None:
        rejected = {id(rejection.document): rejection.reason for rejection in rejections}
        for dropped in files:
            await asyncio.to_thread(settle, dropped, rejected)
