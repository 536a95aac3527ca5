"""Keeping a digest grounded in its context documents: the summary's content, the score.

- `ungrounded`: a summary that shares no content word, number or name with the documents
  the model was shown (the entity's own name aside: every summary names it) is made up or
  empty talk ("overall the news is positive"). The check is deliberately weak — one shared
  token passes — so it only rejects answers with nothing from the documents at all.
  Tokens are language-aware: Hangul, kana and CJK ideographs are written without spaces
  between a word and its particles (삼성전자가, 삼성전자는), so those scripts compare as
  character bigrams; everything else as case-folded words and numbers.
- `held_score`: the digest's score kept within a distance of its documents' mean score, so
  a model cannot call an entity whose documents average 30 an 85.

Pure functions: the digester feeds them the prompt's documents and the model's answer.
"""

import re
from collections.abc import Iterable

_BIGRAM_SCRIPTS = "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3"
_BIGRAM_RUN = re.compile(f"[{_BIGRAM_SCRIPTS}]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_]+")

# Function words, and words that describe the analysis rather than state a fact. Word lists
# read better as text than as one string per line, hence the split (and the noqa).
_STOPWORDS = frozenset(
    """a about above after again against all also an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how however i if in into is it its
    itself just more most my no nor not now of off on once only or other our out over own same
    she should so some such than that the their them then there these they this those through
    to too under until up very was we were what when where which while who whom why will with
    would you your amid among says said say recent recently new news article articles document
    documents review reviews report reports reported entity summary overall mixed positive
    negative neutral generally mostly score sentiment outlook briefing company companies
    customers customer business""".split()  # noqa: SIM905
)
# Bigrams of Korean endings and particles, and of words about the analysis itself.
_STOP_BIGRAMS = frozenset(
    """있다 있는 있습 했다 했습 한다 하는 하고 하여 해서 되었 되어 됐다 된다 되는 습니 니다 이다
    에서 으로 에게 대한 대해 관련 그리 그러 하지 지만 것으 것이 이번 최근 전반 전체 긍정 부정 중립
    소식 뉴스 기사 리뷰 후기 문서 요약 평가 점수""".split()  # noqa: SIM905
)


def tokens(text: str) -> set[str]:
    """Content tokens: character bigrams of spaceless scripts, other words (3+ letters,
    not function words) case-folded, and numbers without their thousands separators."""
    found: set[str] = set()
    for run in _BIGRAM_RUN.findall(text):
        found.update(run[i : i + 2] for i in range(len(run) - 1))
    rest = _BIGRAM_RUN.sub(" ", text)
    found.update(number.replace(",", "") for number in _NUMBER.findall(rest))
    found.update(
        word
        for word in (w.casefold() for w in _WORD.findall(rest))
        if len(word) >= 3 and word not in _STOPWORDS
    )
    return found - _STOP_BIGRAMS


def ungrounded(
    summary: str, sources: Iterable[str], names: Iterable[str] = (), examples: Iterable[str] = ()
) -> str | None:
    """Why the summary is not grounded in the sources, or None when it shares a token with
    them beyond `names` (the entity's name and ticker) and does not rather repeat the worked
    `examples` the prompt showed (a small model copies them: same shape, wrong facts)."""
    own = set().union(*(tokens(name) for name in names))
    content = tokens(summary) - own
    if not content:
        return "the summary says nothing beyond the entity's name: state what the documents say"
    known = set().union(*(tokens(source) for source in sources))
    shared = content & known
    if not shared:
        return (
            "the summary shares no word, number or name with the documents: summarise only "
            "what they say"
        )
    copied = content & (set().union(*(tokens(example) for example in examples)) - known)
    if len(copied) > len(shared):
        return "the summary repeats the worked example, not these documents: summarise them"
    return None


def held_score(raw: float, mean: float | None, max_distance: float) -> float:
    """The score moved into [mean - max_distance, mean + max_distance] ∩ [0, 100]; unchanged
    when no document has a score."""
    if mean is None:
        return raw
    low, high = max(mean - max_distance, 0.0), min(mean + max_distance, 100.0)
    return min(max(raw, low), high)
