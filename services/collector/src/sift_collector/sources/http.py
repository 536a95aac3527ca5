"""Conditional GET for HTTP sources: send the cursor's validators, read a bounded body.

`If-None-Match` carries the stored ETag and `If-Modified-Since` the stored Last-Modified; a
304 means nothing changed. Network errors and error statuses become `SourceError`.
"""

from dataclasses import dataclass

import httpx

from sift_collector.sources.base import Cursor, Invalid, Poll, SourceError, select_new
from sift_common.contracts import IncomingDocument


@dataclass(frozen=True)
class Fetched:
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None


def conditional_headers(cursor: Cursor, headers: dict[str, str]) -> dict[str, str]:
    sent = dict(headers)
    if cursor.etag:
        sent["If-None-Match"] = cursor.etag
    if cursor.last_modified:
        sent["If-Modified-Since"] = cursor.last_modified
    return sent


async def _read_bounded(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise SourceError(f"GET {url}: response larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def conditional_get(
    client: httpx.AsyncClient,
    url: str,
    *,
    cursor: Cursor,
    headers: dict[str, str],
    timeout_s: float,
    max_bytes: int,
    params: dict[str, str] | None = None,
) -> Fetched | None:
    """The response body and its validators, or None when the server answered 304."""
    request_headers = conditional_headers(cursor, headers)
    target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)  # keeps ?…
    try:
        async with client.stream(
            "GET", target, headers=request_headers, timeout=timeout_s
        ) as response:
            if response.status_code == httpx.codes.NOT_MODIFIED:
                return None
            if response.status_code != httpx.codes.OK:
                raise SourceError(f"GET {url}: HTTP {response.status_code}")
            body = await _read_bounded(response, url, max_bytes)
    except httpx.HTTPError as exc:
        raise SourceError(f"GET {url}: {exc!r}") from exc
    return Fetched(
        body=body,
        content_type=response.headers.get("content-type"),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )


def fetched_poll(
    cursor: Cursor, fetched: Fetched, documents: list[IncomingDocument], invalid: list[Invalid]
) -> Poll:
    """The new documents of a fetched response, with the response's validators in the cursor
    for the next conditional request."""
    fresh, next_cursor = select_new(cursor, documents)
    validators = {"etag": fetched.etag, "last_modified": fetched.last_modified}
    return Poll(fresh, next_cursor.model_copy(update=validators), invalid=invalid)
