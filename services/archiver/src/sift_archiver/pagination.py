"""Opaque cursors for list endpoints, and CSV rendering of any list.

A cursor is URL-safe base64 of a small JSON object; what it holds (an offset, the last bucket)
is each endpoint's business. A cursor that is not one this API hands out (it does not decode,
holds other keys, an offset that is not a whole number from 0 to the endpoint's maximum, a
bucket that is not an ISO time) is a 422 naming `cursor`, never a 500. Offsets are bounded
(`MAX_OFFSET`, `MAX_SEARCH_OFFSET`): a list ends there, with no next cursor.

CSV cells that a spreadsheet would run as a formula (text starting with `=`, `+`, `-`, `@`, a
tab or a carriage return) get a leading `'`, so an analyst opening an export runs nothing a
document's author wrote.
"""

import base64
import binascii
import csv
import io
import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sift_common.service.errors import ApiError

MAX_OFFSET = 10_000  # rankings: the 10 000 first rows are as deep as a list goes
MAX_SEARCH_OFFSET = 1_000  # search fetches offset + k rows from the vector index
NOT_OURS = "not a cursor this API handed out"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class BadParameter(ApiError):
    """A query parameter that passed type checks but cannot be served: a 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, "invalid_request", f"{field}: {message}", errors=[(field, message)])
        self.field = field


def encode_cursor(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, keys: Collection[str] | None = None) -> dict[str, Any]:
    """The cursor's state; with `keys`, any other key makes it one this API did not hand out."""
    if cursor is None:
        return {}
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadParameter("cursor", NOT_OURS) from exc
    if not isinstance(state, dict) or (keys is not None and not set(state) <= set(keys)):
        raise BadParameter("cursor", NOT_OURS)
    return state


def cursor_offset(cursor: str | None, maximum: int = MAX_OFFSET) -> int:
    offset = decode_cursor(cursor, {"offset"}).get("offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise BadParameter("cursor", NOT_OURS)
    if offset > maximum:
        raise BadParameter("cursor", f"lists end at offset {maximum}")
    return offset


def next_offset_cursor(offset: int, step: int, more: bool, maximum: int = MAX_OFFSET) -> str | None:
    """The cursor of the next page, if there is one within `maximum`."""
    following = offset + step
    return encode_cursor({"offset": following}) if more and following <= maximum else None


def cursor_after(cursor: str | None) -> datetime | None:
    """The bucket a time-series cursor resumes after (UTC when it names no offset)."""
    after = decode_cursor(cursor, {"after"}).get("after")
    if after is None:
        return None
    try:
        moment = datetime.fromisoformat(after) if isinstance(after, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise BadParameter("cursor", NOT_OURS)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, str):
        return f"'{value}" if value.startswith(FORMULA_STARTS) else value
    return str(value)  # numbers: a negative one is a number to a spreadsheet, not a formula


def to_csv(items: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    # RFC 4180 line ends: a cell holding a carriage return is quoted too, not split.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for item in items:
        writer.writerow([_cell(item.get(column)) for column in columns])
    return out.getvalue()
