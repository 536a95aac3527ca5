"""Turning an `IncomingDocument` into a `Document`: pure, deterministic, with clear refusals.

HTML is reduced to its text; Unicode is NFKC-normalised and whitespace collapsed (paragraph
breaks kept); the language is detected when the sender did not give it; the URL is
canonicalised; a document over the size limits is refused with the reason, never truncated.

C0 and C1 control characters other than tab, line feed and carriage return are removed from
every string (PostgreSQL refuses NUL in text and JSONB; the others are invisible noise), before
the content hash is derived, so two copies that differ only by such a character are one
document. In title and body the controls that separate words (VT, FF, the FS/GS/RS/US
separators, NEL) become a space; the rest are dropped. Metadata values keep tab, line feed and
carriage return verbatim.
"""

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from langdetect import DetectorFactory, LangDetectException, detect
from selectolax.lexbor import LexborHTMLParser

from sift_common.contracts import Document, EntityRef, IncomingDocument
from sift_common.ids import canonical_url

DetectorFactory.seed = 0  # langdetect is randomised; a fixed seed makes it deterministic

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_BLOCK_END = re.compile(r"<(br|/p|/div|/h[1-6]|/li|/tr|/blockquote|/section|/article)\b", re.I)
_NON_CONTENT_TAGS = ("script", "style", "noscript", "template", "head")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0, DEL, C1 but \t \n \r
_SEPARATING_CONTROLS = re.compile(r"[\x0b\x0c\x1c-\x1f\x85]")  # whitespace to Python


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


def strip_controls(text: str) -> str:
    """Without C0/C1 control characters (tab, line feed and carriage return stay)."""
    return _CONTROLS.sub("", text)


def text_without_controls(text: str) -> str:
    """For prose: controls that separate words become a space, the others are dropped."""
    return strip_controls(_SEPARATING_CONTROLS.sub(" ", text))


def html_to_text(html: str) -> str:
    # Text nodes are joined as they stand (inline tags split words' neighbours, not words);
    # block boundaries become line breaks so paragraphs survive.
    tree = LexborHTMLParser(_BLOCK_END.sub(r"\n<\1", html))
    tree.strip_tags(list(_NON_CONTENT_TAGS))
    root = tree.body or tree.root
    return "" if root is None else root.text(separator="")


def normalise_text(text: str) -> str:
    """Controls removed, NFKC, spaces collapsed within lines, blank lines folded into one."""
    text = text_without_controls(unicodedata.normalize("NFKC", text))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
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


def _prose(text: str, html: bool) -> str:
    # Controls go before parsing too: an HTML parser keeps or replaces them as it likes.
    return normalise_text(html_to_text(text_without_controls(text)) if html else text)


def _subject(subject: EntityRef) -> EntityRef:
    kind, name = strip_controls(subject.kind), strip_controls(subject.name)
    if not kind or not name:
        raise DocumentRejectedError("subjects", "a kind or name of only control characters")
    ticker = strip_controls(subject.ticker) if subject.ticker else None
    return EntityRef(kind=kind, name=name, ticker=ticker or None)


def _external_id(value: str | None) -> str | None:
    return (strip_controls(value).strip() or None) if value else None


def normalise(incoming: IncomingDocument, limits: Limits = Limits()) -> Document:
    body = _prose(incoming.body, incoming.content_type == "html")
    if len(body) < limits.min_body_chars:
        raise DocumentRejectedError("body", "no text left after removing markup and whitespace")
    if len(body) > limits.max_body_chars:
        raise DocumentRejectedError(
            "body", f"{len(body)} characters of text; the limit is {limits.max_body_chars}"
        )
    title = _prose(incoming.title, html=True) if incoming.title else None
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
        external_id=_external_id(incoming.external_id),
        url=checked_url(strip_controls(incoming.url)) if incoming.url else None,
        title=title or None,
        language=(incoming.language or detect_language(body)),
        kind=incoming.kind,
        published_at=incoming.published_at,
        metadata={strip_controls(k): strip_controls(v) for k, v in incoming.metadata.items()},
        subjects=[_subject(subject) for subject in incoming.subjects],
    )
