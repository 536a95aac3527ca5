"""Which entities an analysis stores: the publisher's subjects first, then checked mentions.

A small model names sentences, sentiment words and invented companies as entities; an analyst
ranking entities must see real names only. So:

- the document's `subjects` (what the publisher knows it is about) always win;
- a model mention is kept only if it passes `refusal()`: a tracked kind, a name that looks
  like a name (letters, a few words, no sentence punctuation, not a sentiment or generic
  word) and that occurs in the document itself (a model cannot invent "Oxycocia");
- every name is resolved through the known entities (tickers and aliases across English and
  Korean) to one canonical form, so "삼성전자", "Samsung" and "005930" are one entity.

A refused mention is counted by reason, never stored. No I/O: the alias table is loaded once.
"""

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sift_common.contracts import EntityMention, EntityRef
from sift_common.errors import ConfigError

BUNDLED_KNOWN_ENTITIES = Path(__file__).with_name("known_entities.yaml")
MAX_NAME_WORDS = 6
MAX_NAME_CHARS = 60
# Legal-form words that do not tell two companies apart ("Nvidia Corp" is "Nvidia").
_LEGAL_FORMS = frozenset(
    str.split(
        "inc inc. incorporated corp corp. corporation co co. company ltd ltd. limited plc llc "
        "ag sa s.a. nv n.v. gmbh holdings group (주) 주식회사 ㈜"
    )
)
# Words a small model returns as a "name" that name nothing.
_NOT_NAMES = frozenset(
    str.split(
        "positive negative neutral mixed good bad great terrible excellent poor none null n/a "
        "unknown other company business restaurant shop store customer customers food "
        "service price delivery ambience quality staff owner market stock stocks shares "
        "investors analysts 긍정 부정 중립 회사 식당 가게 기업 고객 배달 서비스 맛 가격 없음 미상"
    )
) | {"the company", "the restaurant"}
_SENTENCE_MARKS = re.compile(r"[:;!?\n]|\.\s|,\s\w+\s")
_QUOTES = "\"'“”‘’`«»「」『』()[]<>"


class KnownEntity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)
    ticker: str | None = None
    aliases: list[str] = Field(default_factory=list)


def fold(text: str) -> str:
    """Case, width and spacing folded: the form names are compared in."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def clean_name(name: str) -> str:
    """The name without surrounding quotes or punctuation, and without a legal form."""
    words = unicodedata.normalize("NFKC", name).strip().strip(_QUOTES + ".,-–— ").split()
    while len(words) > 1 and words[-1].casefold().rstrip(",") in _LEGAL_FORMS:
        words.pop()
    while len(words) > 1 and words[0].casefold() in _LEGAL_FORMS:
        words.pop(0)
    return " ".join(words).rstrip(",")


@dataclass
class KnownEntities:
    """Canonical names by ticker and by folded alias."""

    by_ticker: dict[str, KnownEntity] = field(default_factory=dict)
    by_alias: dict[str, KnownEntity] = field(default_factory=dict)

    @classmethod
    def of(cls, entities: Iterable[KnownEntity]) -> "KnownEntities":
        known = cls()
        for entity in entities:
            if entity.ticker:
                known.by_ticker[entity.ticker.upper()] = entity
            for alias in (entity.name, *entity.aliases):
                known.by_alias[fold(clean_name(alias))] = entity
        return known

    def find(self, name: str, ticker: str | None) -> KnownEntity | None:
        if ticker and (hit := self.by_ticker.get(ticker.strip().upper())):
            return hit
        if hit := self.by_alias.get(fold(clean_name(name))):
            return hit
        code = name.strip()  # a bare ticker as the name: "AAPL", "005930"
        return self.by_ticker.get(code) if code.isupper() or code.isdigit() else None

    def spellings(self, entity: KnownEntity) -> list[str]:
        return [entity.name, *entity.aliases, *([entity.ticker] if entity.ticker else [])]


def load_known_entities(path: Path = BUNDLED_KNOWN_ENTITIES) -> KnownEntities:
    """The alias table; ConfigError names SIFT_ANALYZER_KNOWN_ENTITIES and what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text()) or []
        return KnownEntities.of(KnownEntity.model_validate(item) for item in raw)
    except (OSError, yaml.YAMLError, ValidationError, TypeError) as exc:
        raise ConfigError(f"SIFT_ANALYZER_KNOWN_ENTITIES ({path}): {exc}") from exc


def canonical(known: KnownEntities, ref: EntityRef, score: float | None) -> EntityMention:
    """The mention under its canonical name and ticker (known entities), else cleaned."""
    hit = known.find(ref.name, ref.ticker)
    if hit is not None:
        return EntityMention(kind=hit.kind, name=hit.name, ticker=hit.ticker, score=score)
    name = clean_name(ref.name) or ref.name
    ticker = (ref.ticker or "").strip().upper() or None
    return EntityMention(kind=ref.kind, name=name[:300], ticker=ticker, score=score)


def refusal(
    known: KnownEntities, mention: EntityMention, text: str, kinds: frozenset[str]
) -> str | None:
    """Why a model's mention must not become an entity, or None when it may."""
    name = clean_name(mention.name)
    if mention.kind not in kinds:
        return "untracked_kind"
    if not any(char.isalpha() for char in name):
        return "no_letter"
    if _SENTENCE_MARKS.search(name):
        return "sentence"
    if len(name) > MAX_NAME_CHARS or len(name.split()) > MAX_NAME_WORDS:
        return "too_long"
    if fold(name) in _NOT_NAMES:
        return "not_a_name"
    hit = known.find(name, mention.ticker)
    spellings = known.spellings(hit) if hit is not None else [name]
    if not any(_occurs(spelling, text) for spelling in spellings):
        return "not_in_text"
    if hit is None and not _looks_proper(name, text):
        return "not_a_proper_noun"
    return None


def _occurs(name: str, text: str) -> bool:
    """Latin-script names as whole Latin words ("MS" is not in "items", "LG화학" is in
    "LG화학은"); Hangul by substring, as Korean attaches particles to names ("삼성전자가")."""
    if not name:
        return False
    if any("a" <= char <= "z" for char in fold(name)):
        return (
            re.search(rf"(?<![a-z0-9]){re.escape(fold(name))}(?![a-z0-9])", fold(text)) is not None
        )
    return fold(name) in fold(text)


def _looks_proper(name: str, text: str) -> bool:
    """Latin-script names are capitalised where the text writes them ("deleivery" is not a
    name); other scripts have no case and pass."""
    if not any("a" <= char.casefold() <= "z" for char in name):
        return True
    start = fold(text).find(fold(name))
    written = unicodedata.normalize("NFKC", text)
    if start < 0 or len(written) != len(fold(text)):
        return name[:1].isupper()
    return any(char.isupper() or char.isdigit() for char in written[start : start + len(name)])


@dataclass
class Selection:
    """The entities to store, and the model mentions refused, counted by reason."""

    mentions: list[EntityMention]
    refused: Counter[str]


def select(
    known: KnownEntities,
    *,
    subjects: Iterable[EntityRef],
    mentions: Iterable[EntityMention],
    text: str,
    kinds: frozenset[str],
    score: float | None,
) -> Selection:
    """Subjects (scored with the document's score) first, then the model's mentions that pass,
    one per canonical key; a mention of a subject adds nothing, nor does an unknown name that
    is part of another entity of the document (`part_of_a_name`)."""
    chosen: dict[str, EntityMention] = {}
    for subject in subjects:
        resolved = canonical(known, subject, score)
        chosen.setdefault(identity(resolved), resolved)
    refused: Counter[str] = Counter()
    unknown: set[str] = set()
    for mention in mentions:
        reason = refusal(known, mention, text, kinds)
        if reason is not None:
            refused[reason] += 1
            continue
        own = mention.score if mention.score is not None else score
        resolved = canonical(known, mention, own)
        if identity(resolved) not in chosen and known.find(mention.name, mention.ticker) is None:
            unknown.add(identity(resolved))
        chosen.setdefault(identity(resolved), resolved)
    for key in unknown:
        if _part_of_another(chosen[key], chosen.values()):
            del chosen[key]
            refused["part_of_a_name"] += 1
    return Selection(list(chosen.values()), refused)


def _part_of_another(mention: EntityMention, others: Iterable[EntityMention]) -> bool:
    """Whether the name is part of a longer name of the same kind: the model named part of a
    company ("Mobil" of "Exxon Mobil"), which would split its scores."""
    return any(
        other.kind == mention.kind
        and fold(other.name) != fold(mention.name)
        and is_word_run(mention.name, other.name)
        for other in others
    )


def is_word_run(part: str, name: str) -> bool:
    """Whether `part` is a run of whole words of `name`, compared folded ("Mobil" of "Exxon
    Mobil", not "Mob")."""
    words, whole = fold(part).split(), fold(name).split()
    span = len(words)
    return span > 0 and any(whole[i : i + span] == words for i in range(len(whole) - span + 1))


def identity(mention: EntityRef) -> str:
    """One entity per ticker, else per folded name (kinds aside: "Samsung" the company and
    "Samsung" the business are one thing to an analyst)."""
    return f"ticker:{mention.ticker}" if mention.ticker else f"name:{fold(mention.name)}"
