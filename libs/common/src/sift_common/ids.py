"""Stable document identity: normalised content, canonical URLs and the document id.

The same document arriving twice (a re-poll, a redelivery, a second publisher retrying) must get
the same id, so every downstream step can use it as its idempotency key.
"""

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_WHITESPACE = re.compile(r"\s+")
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|ref_src)$", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FIELD_SEPARATOR = "\x1f"  # cannot appear in normalised text, so fields never run together


def normalise_content(text: str) -> str:
    """Unicode NFKC, whitespace collapsed to single spaces, trimmed."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def content_hash(text: str) -> str:
    """sha256 of the normalised content: equal for copies that differ only in spacing/encoding."""
    return hashlib.sha256(normalise_content(text).encode("utf-8")).hexdigest()


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, default port, fragment and tracking parameters dropped,
    query parameters sorted, trailing slash of the path removed."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{parts.port}"
    query = sorted(
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING_PARAMS.match(key)
    )
    path = parts.path.rstrip("/") or ""
    return urlunsplit((scheme, host, path, urlencode(query), ""))


def document_id(
    source: str, content: str, external_id: str | None = None, url: str | None = None
) -> str:
    """The stable id of a document: sha256 over its source, its key within the source (the
    external id, else the canonical URL) and the hash of its normalised content."""
    if not source.strip():
        raise ValueError("source must not be empty")
    key = external_id.strip() if external_id else (canonical_url(url) if url else "")
    material = _FIELD_SEPARATOR.join((source.strip(), key, content_hash(content)))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
