"""Opaque cursors for list endpoints, and CSV rendering of any list.

A cursor is URL-safe base64 of a small JSON object; what it holds (an offset, the last bucket)
is each endpoint's business. A cursor that does not decode is a 422 naming `cursor`.
"""

import base64
import binascii
import csv
import io
import json
from datetime import datetime
from typing import Any

from sift_common.service.errors import ApiError


class BadParameter(ApiError):
    """A query parameter that passed type checks but cannot be served: a 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, "invalid_request", f"{field}: {message}", errors=[(field, message)])
        self.field = field


def encode_cursor(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    if cursor is None:
        return {}
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadParameter("cursor", "not a cursor this API handed out") from exc
    if not isinstance(state, dict):
        raise BadParameter("cursor", "not a cursor this API handed out")
    return state


def cursor_offset(cursor: str | None) -> int:
    offset = decode_cursor(cursor).get("offset", 0)
    if not isinstance(offset, int) or offset < 0:
        raise BadParameter("cursor", "not a cursor this API handed out")
    return offset


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def to_csv(items: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for item in items:
        writer.writerow([_cell(item.get(column)) for column in columns])
    return out.getvalue()
