"""Files generated from the code (references, contracts): written, or checked for staleness.

A generated file is either whole (an AsyncAPI document) or a section of a hand-written page
between `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers, the rest of the page kept as
written. `stale` gives a short diff per file that differs from what would be written now, so a
test can fail with it and name the command that fixes it.
"""

import difflib
from pathlib import Path

MAX_DIFF_LINES = 40


def begin_marker(name: str) -> str:
    return f"<!-- {name}:begin -->"


def end_marker(name: str) -> str:
    return f"<!-- {name}:end -->"


def replace_section(page: str, name: str, body: str) -> str:
    """`page` with the text between the `name` markers replaced by `body`."""
    begin, end = begin_marker(name), end_marker(name)
    if page.count(begin) != 1 or page.count(end) != 1 or page.index(begin) > page.index(end):
        raise ValueError(f"expected one {begin} followed by one {end}")
    head, rest = page.split(begin, 1)
    _, tail = rest.split(end, 1)
    note = "<!-- generated: edit the code, then `make docs`; not this section -->"
    return f"{head}{begin}\n{note}\n\n{body.strip()}\n\n{end}{tail}"


def section_of(root: Path, relative: Path, name: str, body: str) -> str:
    """The new text of the page at `root / relative` with its `name` section regenerated."""
    path = root / relative
    try:
        return replace_section(path.read_text(encoding="utf-8"), name, body)
    except FileNotFoundError:
        raise ValueError(f"{path} is missing; it holds the generated {name} section") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def stale(root: Path, rendered: dict[Path, str]) -> list[str]:
    """A short diff per file under `root` that differs from what would be written now."""
    problems: list[str] = []
    for relative, text in rendered.items():
        path = root / relative
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        diff = list(
            difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(path), "regenerated", lineterm=""
            )
        )
        shown = "\n".join(diff[:MAX_DIFF_LINES])
        if len(diff) > MAX_DIFF_LINES:
            shown += f"\n… {len(diff) - MAX_DIFF_LINES} more lines"
        problems.append(f"{path} is stale:\n{shown}")
    return problems


def write(root: Path, rendered: dict[Path, str]) -> list[Path]:
    """Write every file that changed; the paths written."""
    written: list[Path] = []
    for relative, text in rendered.items():
        path = root / relative
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
