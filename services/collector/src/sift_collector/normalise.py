"""Turning an `IncomingDocument` into a `Document`: pure, deterministic, with clear refusals.

HTML is reduced to its text; Unicode is NFKC-normalised and whitespace collapsed (paragraph
breaks kept); the language is detected when the sender did not give it; the URL is
canonicalised; a document over the size limits is refused with the reason, never truncated.
"""

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from langdetect import DetectorFactory, LangDetectException, detect
from selectolax.lexbor import LexborHTMLParser

from sift_common.contracts import Document, IncomingDocument
from sift_common.ids import canonical_url

DetectorFactory.seed = 0  # langdetect is randomised; a fixed seed makes it deterministic

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_BLOCK_END = re.compile(r"<(br|/p|/div|/h[1-6]|/li|/tr|/blockquote|/section|/article)\b", re.I)
_NON_CONTENT_TAGS = ("script", "style", "noscript", "template", "head")


@dataclass(frozen=True)
class Limits:
    max_body_chars: int = 100_000
    max_title_chars: int = 1_000
    min_body_chars: int = 1


class DocumentRejectedError(ValueError):
    """The document cannot enter Sift as it is; `field` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def html_to_text(html: str) -> str:
    # Text nodes are joined as they stand (inline tags split words' neighbours, not words);
    # block boundaries become line breaks so paragraphs survive.
    tree = LexborHTMLParser(_BLOCK_END.sub(r"\n<\1", html))
    tree.strip_tags(list(_NON_CONTENT_TAGS))
    root = tree.body or tree.root
    return "" if root is None else root.text(separator="")


def normalise_text(text: str) -> str:
    """NFKC, spaces collapsed within lines, runs of blank lines folded into one break."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def detect_language(text: str) -> str | None:
    try:
        return str(detect(text[:2_000]))
    except LangDetectException:
        return None  # no letters to judge by (numbers, symbols): leave it unknown


def checked_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DocumentRejectedError("url", f"not an absolute http(s) URL: {url[:200]!r}")
    return canonical_url(url)


def normalise(incoming: IncomingDocument, limits: Limits = Limits()) -> Document:
    raw_body = html_to_text(incoming.body) if incoming.content_type == "html" else incoming.body
    body = normalise_text(raw_body)
    if len(body) < limits.min_body_chars:
        raise DocumentRejectedError("body", "no text left after removing markup and whitespace")
    if len(body) > limits.max_body_chars:
        raise DocumentRejectedError(
            "body", f"{len(body)} characters of text; the limit is {limits.max_body_chars}"
        )
    title = normalise_text(html_to_text(incoming.title)) if incoming.title else None
    if title is not None and len(title) > limits.max_title_chars:
        raise DocumentRejectedError(
            "title", f"{len(title)} characters; the limit is {limits.max_title_chars}"
        )
    source = normalise_text(incoming.source)
    if not source:
        raise DocumentRejectedError("source", "only whitespace or control characters")
    return Document.create(
        source=source,
        body=body,
        external_id=incoming.external_id.strip() if incoming.external_id else None,
        url=checked_url(incoming.url) if incoming.url else None,
        title=title or None,
        language=(incoming.language or detect_language(body)),
        kind=incoming.kind,
        published_at=incoming.published_at,
        metadata=incoming.metadata,
        subjects=incoming.subjects,
    )
