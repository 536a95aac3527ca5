"""Splitting long documents into overlapping word windows, each keeping its character span.

MiniLM reads at most 256 tokens; ~160 English words stay under that, and the embed call also
passes `truncate_prompt_tokens` as a guard for texts dense in tokens.
"""

import re
from dataclasses import dataclass

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # character offsets into the embedded text, end exclusive
    end: int
    text: str


def chunk_text(text: str, *, words: int = 160, overlap: int = 32) -> list[Chunk]:
    """Windows of `words` words, each sharing `overlap` words with the previous one."""
    if overlap >= words:
        raise ValueError("overlap must be smaller than the window")
    spans = [match.span() for match in _WORD.finditer(text)]
    if not spans:
        return []
    chunks: list[Chunk] = []
    step = words - overlap
    for first in range(0, len(spans), step):
        window = spans[first : first + words]
        start, end = window[0][0], window[-1][1]
        chunks.append(Chunk(len(chunks), start, end, text[start:end]))
        if first + words >= len(spans):
            break
    return chunks


def embedding_text(title: str | None, body: str) -> str:
    """What is embedded: the title (when there is one) then the body."""
    return f"{title}\n\n{body}" if title else body
