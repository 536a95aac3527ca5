"""Writes the bundled sample corpus under data/ (deterministic; rerun after editing).

300 unique documents: English news about 20 US companies, Korean news about 10 Korean
companies, English and Korean restaurant reviews, published over six months and split across
the four entry points the demo feeds: a directory drop, an RSS feed (news only: a feed cannot
say a document's kind), the ingest API and AMQP intake. The prose is the material in
scripts/corpus/*.toml: per news event several differently built paragraphs (lead, detail,
quote; shared market-reaction and analyst paragraphs), per review aspect sentences in several
voices, combined into stories of one to four paragraphs and reviews from one-liners to several
sentences. Every document names its company or restaurant, and its direction is plain: good or
bad news for the company, a satisfied or dissatisfied reviewer.

Reviews carry their business as `subjects` wherever the format allows (drop, API, AMQP); news
carries its company and ticker through the API and AMQP; drop and feed news carry none (the
model has to find them). Exact and near duplicates (whitespace or HTML differences: the same
content hash after the collector's normalisation) and a few malformed records are mixed in;
data/MANIFEST.json states what each entry point should produce.

One module on purpose: the text lives in the TOML files, and a script run by its path cannot
import a sibling module that mypy also resolves.
"""

import json
import random
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

DATA = Path(__file__).resolve().parent.parent / "data"
MATERIAL = Path(__file__).resolve().parent / "corpus"
START, SPAN = datetime(2026, 6, 1, tzinfo=UTC), timedelta(days=183)
Doc = dict[str, Any]


@dataclass(frozen=True)
class Company:
    name: str
    ticker: str
    short: str  # how a story refers to it after the first mention
    sector: str
    revenue: float  # a quarter's: $ billion (US), 억원 (Korea)
    margin: float  # gross margin % (US), operating margin % (Korea)
    price: float  # a share: $ (US), 원 (Korea)


COMPANIES_EN = [
    Company("Apple", "AAPL", "Apple", "devices", 95, 46, 230),
    Company("Microsoft", "MSFT", "Microsoft", "software", 70, 69, 420),
    Company("Nvidia", "NVDA", "Nvidia", "chips", 45, 74, 140),
    Company("Amazon", "AMZN", "Amazon", "ecommerce", 160, 48, 210),
    Company("Alphabet", "GOOGL", "Alphabet", "internet", 95, 57, 175),
    Company("Meta Platforms", "META", "Meta", "internet", 45, 81, 560),
    Company("Tesla", "TSLA", "Tesla", "auto", 25, 18, 250),
    Company("Intel", "INTC", "Intel", "chips", 13, 38, 22),
    Company("AMD", "AMD", "AMD", "chips", 8, 52, 150),
    Company("Netflix", "NFLX", "Netflix", "media", 11, 45, 700),
    Company("Oracle", "ORCL", "Oracle", "software", 15, 70, 170),
    Company("Salesforce", "CRM", "Salesforce", "software", 10, 76, 280),
    Company("Boeing", "BA", "Boeing", "aerospace", 20, 12, 170),
    Company("Pfizer", "PFE", "Pfizer", "pharma", 14, 70, 28),
    Company("Walmart", "WMT", "Walmart", "retail", 170, 24, 85),
    Company("Nike", "NKE", "Nike", "apparel", 12, 44, 75),
    Company("Ford", "F", "Ford", "auto", 45, 14, 11),
    Company("Exxon Mobil", "XOM", "Exxon", "energy", 85, 32, 115),
    Company("JPMorgan Chase", "JPM", "JPMorgan", "bank", 42, 60, 230),
    Company("Coca-Cola", "KO", "Coca-Cola", "beverages", 12, 61, 68),
]
COMPANIES_KO = [
    Company("삼성전자", "005930", "삼성전자", "chips", 790_000, 12, 71_000),
    Company("SK하이닉스", "000660", "SK하이닉스", "chips", 200_000, 35, 190_000),
    Company("현대자동차", "005380", "현대차", "auto", 430_000, 8, 220_000),
    Company("LG에너지솔루션", "373220", "LG에너지솔루션", "battery", 60_000, 5, 380_000),
    Company("네이버", "035420", "네이버", "internet", 28_000, 17, 190_000),
    Company("카카오", "035720", "카카오", "internet", 20_000, 6, 40_000),
    Company("기아", "000270", "기아", "auto", 270_000, 10, 100_000),
    Company("셀트리온", "068270", "셀트리온", "bio", 9_000, 20, 180_000),
    Company("포스코홀딩스", "005490", "포스코홀딩스", "steel", 180_000, 4, 330_000),
    Company("LG화학", "051910", "LG화학", "chem", 120_000, 3, 300_000),
]
# Unique documents per entry point: English news, Korean news, English reviews, Korean reviews.
PLAN = {
    "drop": (46, 20, 35, 9),
    "feed": (35, 15, 0, 0),
    "api": (34, 14, 26, 6),
    "amqp": (25, 11, 19, 5),
}
FIRST_ID = {"drop": 0, "feed": 1000, "api": 2000, "amqp": 3000}
# Korean costs the small chat model about 3 tokens a character: keep its prompts in context.
MAX_CHARS = {("news", "ko"): 400, ("review", "ko"): 220}
# A story is its lead and then these paragraphs.
STORIES = {
    "en": [(), ("reaction",), ("detail",), ("quote",), ("detail", "quote"),
           ("quote", "reaction"), ("detail", "reaction", "analyst"),
           ("detail", "quote", "analyst"), ("analyst",), ("reaction", "detail", "quote"),
           ("quote", "detail", "reaction")],
    "ko": [(), ("reaction",), ("detail",), ("quote",), ("detail", "reaction"),
           ("quote", "analyst"), ("detail", "quote")],
}  # fmt: skip
NUMBER_WORDS = dict(enumerate(["three", "four", "five", "six", "seven", "eight", "nine", "ten"], 3))
ORDINALS = ["", "first", "second", "third", "fourth", "fifth"]


def load(name: str) -> dict[str, Any]:
    with (MATERIAL / f"{name}.toml").open("rb") as file:
        return tomllib.load(file)


# ---------------------------------------------------------------- Korean particles

_JOSA = re.compile(r"(\S)(\([^)]*\))?\[(은|이|을|과|으로)\]")
_JOSA_FORMS = {"은": ("은", "는"), "이": ("이", "가"), "을": ("을", "를"), "과": ("과", "와")}
_READ_AS = {"0": 21, "1": 8, "3": 16, "6": 1, "7": 8, "8": 8, "L": 8, "M": 16, "N": 4, "R": 8}


def _final_consonant(char: str) -> int:
    """The final consonant (0 = none, 8 = ㄹ) of a syllable, or of a digit, letter or % read
    aloud in Korean."""
    if "가" <= char <= "힣":
        return (ord(char) - ord("가")) % 28
    return _READ_AS.get(char.upper(), 0)


def josa(text: str) -> str:
    """Resolves `word[은]`, `word(005930)[이]`, `word[으로]` to the particle the word takes."""

    def pick(match: re.Match[str]) -> str:
        final, particle = _final_consonant(match.group(1)), match.group(3)
        if particle == "으로":
            form = "으로" if final not in (0, 8) else "로"
        else:
            form = _JOSA_FORMS[particle][0 if final else 1]
        return match.group(1) + (match.group(2) or "") + form

    return _JOSA.sub(pick, text)


def fill(template: str, params: dict[str, str]) -> str:
    return josa(template.format_map(params))


# ---------------------------------------------------------------- figures


def _usd(billions: float) -> str:
    if billions >= 10:
        return f"${billions:,.1f} billion"
    return f"${billions:.2f} billion" if billions >= 1 else f"${billions * 1000:,.0f} million"


def _krw(eok: float) -> str:
    """억원 amounts as Korean papers write them: 79조1000억원, 4812억원."""
    if eok < 10_000:
        return f"{round(eok)}억원"
    jo, rest = divmod(round(eok, -2), 10_000)
    return f"{jo:.0f}조{rest:.0f}억원" if rest else f"{jo:.0f}조원"


def _ko_number(n: float) -> str:
    man, rest = divmod(round(n), 10_000)
    return (f"{man}만" if man else "") + (str(rest) if rest or not man else "")


def _quarter(when: datetime) -> int:
    return (when.month - 1) // 3 or 4  # a report covers the quarter before


def _figures(rng: random.Random, c: Company, good: bool, units: tuple[int, int]) -> dict[str, Any]:
    """The raw numbers of one story, pointing the way the news goes."""
    sign = 1 if good else -1
    growth = rng.randint(4, 24)
    price = c.price * rng.uniform(0.85, 1.15)
    pct = round(rng.uniform(1.8, 11.5), 1)
    if good:  # analysts chase the stock up, or cut their targets below the price
        target_old, target = price * rng.uniform(0.95, 1.15), price * rng.uniform(1.18, 1.45)
    else:
        target_old, target = price * rng.uniform(1.05, 1.35), price * rng.uniform(0.72, 0.92)
    recalled = rng.randint(*units)
    return {
        "sign": sign,
        "rev": c.revenue * rng.uniform(0.94, 1.12),
        "surprise": 1 + rng.uniform(0.015, 0.07) * sign,
        "growth": growth,
        "growth2": max(1, growth - sign * rng.randint(1, 3)),
        "pct": pct,
        "moved": price * (1 + sign * pct / 100),
        "target_old": target_old,
        "target": target,
        "upside": round(abs(target / price - 1) * 100),
        "units": round(recalled, -2) if recalled > 10_000 else recalled,
        "years": rng.randint(3, 10),
        "workers": rng.randrange(2_000, 30_000, 100),
        "weeks": rng.randint(2, 5),
        "margin": c.margin * rng.uniform(0.9, 1.1),
    }


def _en_params(rng: random.Random, c: Company, f: dict[str, Any], when: datetime) -> dict[str, Any]:
    rev, beat, sign = f["rev"], f["surprise"], f["sign"]
    eps = c.price / 100 * rng.uniform(0.8, 1.2)
    guide = rev * rng.uniform(1.0, 1.05) * (1 + sign * rng.uniform(0.02, 0.1))
    return {
        "name": c.name, "short": c.short, "ticker": c.ticker, "weekday": when.strftime("%A"),
        "quarter": ORDINALS[_quarter(when)], "rev": _usd(rev), "est": _usd(rev / beat),
        "eps": f"${eps:.2f}", "eps_est": f"${eps / beat:.2f}", "margin": f"{f['margin']:.1f}",
        "margin_prev": f"{f['margin'] - sign * rng.uniform(0.6, 3.0):.1f}",
        "guide": f"{_usd(guide)} to {_usd(guide * 1.03)}", "guide_est": _usd(rev * 1.03),
        "growth": f["growth"], "growth2": f["growth2"], "pct": f["pct"], "upside": f["upside"],
        "price": f"${f['moved']:,.2f}", "target": f"${f['target']:,.0f}",
        "target_old": f"${f['target_old']:,.0f}", "units": f"{f['units']:,}",
        "jobs": f"{rng.randrange(800, 12_000, 100):,}", "staff_pct": rng.randint(3, 10),
        "buyback": f"${max(1, round(c.revenue * rng.uniform(0.1, 0.5)))} billion",
        "buyback2": _usd(c.revenue * rng.uniform(0.03, 0.1)), "cap_pct": rng.randint(2, 6),
        "dividend_pct": rng.randint(4, 12), "deal_value": _usd(c.revenue * rng.uniform(0.02, 0.15)),
        "years": NUMBER_WORDS[f["years"]], "workers": f"{f['workers']:,}",
        "weeks_word": ORDINALS[f["weeks"]],
    }  # fmt: skip


def _ko_params(rng: random.Random, c: Company, f: dict[str, Any], when: datetime) -> dict[str, Any]:
    op = f["rev"] * f["margin"] / 100
    return {
        "n": c.name, "s": c.short, "code": c.ticker, "day": when.day,
        "q": f"{_quarter(when)}분기", "rev": _krw(f["rev"]), "op": _krw(op),
        "est": _krw(op / f["surprise"]), "growth": f["growth"], "growth2": f["growth2"],
        "pct": f["pct"], "price": _ko_number(round(f["moved"], -2)) + "원",
        "target": _ko_number(round(f["target"], -3)) + "원",
        "target_old": _ko_number(round(f["target_old"], -3)) + "원",
        "buyback": _krw(max(1000, round(op * rng.uniform(0.3, 1.2), -3))),
        "dividend_pct": rng.randint(4, 12), "deal_value": _krw(f["rev"] * rng.uniform(0.05, 0.3)),
        "years": f["years"], "units": _ko_number(f["units"]), "workers": _ko_number(f["workers"]),
        "weeks": f["weeks"], "staff": rng.randint(3, 10),
    }  # fmt: skip


# ---------------------------------------------------------------- news

# Figures a story states once: a paragraph repeating one of them is not chosen.
FACTS = {"rev", "est", "eps", "eps_est", "guide", "guide_est", "margin", "pct", "op", "target"}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _facts(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template)) & FACTS


@dataclass
class NewsDesk:
    """Writes stories. It remembers each company's quarterly report, so that every story about
    one report agrees on whether it beat and on its numbers."""

    rng: random.Random
    material: dict[str, dict[str, Any]]  # by language
    reports: dict[tuple[str, int], tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def story(self, c: Company, good: bool, when: datetime, lang: str) -> tuple[str, str]:
        m, rng = self.material[lang], self.rng
        sector = m["sectors"][c.sector]
        name = self._event(c, good, when, m["events"], sector)
        event = m["events"][name]
        f = _figures(rng, c, good, tuple(sector.get("recall_units", (1, 1))))
        if name.startswith("earnings_"):
            f = self.reports.setdefault((c.name, _quarter(when)), (name, f))[1]
        params = (_ko_params if lang == "ko" else _en_params)(rng, c, f, when)
        words = {k: str(v) for k, v in {**sector, **params}.items()}
        paragraphs = [rng.choice(event["leads"])]
        shared = m["shared"]["good" if good else "bad"]
        for slot in rng.choice(STORIES[lang]):
            if slot in event.get("skip", ()):
                continue  # e.g. an upgrade is the analysts' view already
            told = {fact for p in paragraphs for fact in _facts(p)}
            pool = shared[slot] if slot in shared else event[slot + "s"]
            fresh = [p for p in pool if not _facts(p) & told]
            if fresh:  # else every choice would repeat a figure: leave the slot out
                paragraphs.append(rng.choice(fresh))
        title = fill(rng.choice(event["titles"]), words)
        return title, "\n\n".join(fill(p, words) for p in paragraphs)

    def _event(
        self,
        c: Company,
        good: bool,
        when: datetime,
        events: dict[str, Any],
        sector: dict[str, Any],
    ) -> str:
        """An event that goes the story's way and fits the sector (recalls need something to
        recall); never an earnings beat and a miss for one report."""
        reported = self.reports.get((c.name, _quarter(when)))
        return self.rng.choice(
            [
                name
                for name, event in events.items()
                if (event["direction"] == "good") == good
                and event.get("needs", "segment") in sector
                and not (name.startswith("earnings_") and reported and reported[0] != name)
            ]
        )


# ---------------------------------------------------------------- reviews


@dataclass(frozen=True)
class Restaurant:
    name: str
    dishes: tuple[str, ...]
    price: tuple[int, int]
    delivery: bool


def restaurants(material: dict[str, Any]) -> list[Restaurant]:
    return [
        Restaurant(name, tuple(r["dishes"]), (r["price"][0], r["price"][1]), r["delivery"])
        for name, r in material["restaurants"].items()
    ]


def _review_words(
    rng: random.Random, m: dict[str, Any], r: Restaurant, lang: str
) -> dict[str, str]:
    dish, dish2 = rng.sample(r.dishes, 2)
    words = {key: rng.choice(choices) for key, choices in m["words"].items()}
    plural = dish.endswith("s") or dish.endswith("gyoza")
    minutes = str(rng.randrange(35, 100, 5))
    if lang == "ko":
        price = f"{rng.randrange(r.price[0], r.price[1] + 1, 1000):,}원"
    else:
        price = f"${rng.randint(*r.price)}"
    return words | {
        "name": r.name, "dish": dish, "dish2": dish2, "Dish": dish[:1].upper() + dish[1:],
        "dishes": dish.removeprefix("the "), "was": "were" if plural else "was",
        "is": "are" if plural else "is", "it": "they" if plural else "it", "price": price,
        "minutes": minutes, "minutes_short": str(rng.randrange(10, 25, 5)),
    }  # fmt: skip


def _aspects(rng: random.Random, m: dict[str, Any], mood: str, delivery: bool) -> list[str]:
    """Sentences about the food and some other aspects: all one way, or (mixed) the good
    first and then the bad, with the verdict to follow."""
    others = ["price", "delivery"] if delivery else ["service", "price", "ambience", "wait"]
    rng.shuffle(others)
    side = "bad" if mood.endswith("bad") else "good"
    aspects = m["aspects"]
    if mood.startswith("mixed"):
        other = "bad" if side == "good" else "good"
        pairs = (
            [("food", side), (others[0], other)]
            if side == "good"
            else [(others[0], other), ("food", side)]
        )
        pairs += [(aspect, side) for aspect in others[1 : rng.randint(1, 2)]]
    else:
        pairs = [(aspect, side) for aspect in ["food", *others][: rng.randint(1, 4)]]
        rng.shuffle(pairs)
    return [rng.choice(aspects[aspect][way]) for aspect, way in pairs]


def review(
    rng: random.Random, m: dict[str, Any], r: Restaurant, satisfied: bool, lang: str
) -> tuple[str, str]:
    side = "good" if satisfied else "bad"
    mood = f"mixed_{side}" if rng.random() < 0.3 else side
    words = _review_words(rng, m, r, lang)
    title = fill(rng.choice(m["titles"][mood]), words)
    if mood == side and rng.random() < 0.25:
        return title, fill(rng.choice(m["one_liners"][side]), words)
    delivery = r.delivery and rng.random() < 0.35
    sentences = [rng.choice(m["openers"]["delivery" if delivery else "dine_in"])]
    sentences += _aspects(rng, m, mood, delivery)
    sentences.append(rng.choice(m["closers"][mood]))
    if rng.random() < 0.12:
        sentences.append(rng.choice(m["postscripts"][side]))
    if len(sentences) >= 5 and rng.random() < 0.5:  # a longer review in two paragraphs
        cut = len(sentences) // 2
        return title, fill(" ".join(sentences[:cut]) + "\n\n" + " ".join(sentences[cut:]), words)
    return title, fill(" ".join(sentences), words)


# ---------------------------------------------------------------- the corpus

Subject = Company | Restaurant


def _deck(rng: random.Random, subjects: list[Subject], count: int) -> list[Subject]:
    """`count` subjects, each about equally often, in a shuffled order."""
    deck = [subjects[i % len(subjects)] for i in range(count)]
    rng.shuffle(deck)
    return deck


def _leanings(rng: random.Random, subjects: list[Subject]) -> dict[str, float]:
    """How likely each subject's news is good (or its reviewer satisfied): spread from 15 % to
    85 %, so that some companies and restaurants end up on top and some at the bottom."""
    odds = [0.15 + 0.7 * i / max(1, len(subjects) - 1) for i in range(len(subjects))]
    rng.shuffle(odds)
    return {s.name: p for s, p in zip(subjects, odds, strict=True)}


def _ref(subject: Subject) -> dict[str, str]:
    if isinstance(subject, Company):
        return {"kind": "company", "name": subject.name, "ticker": subject.ticker}
    return {"kind": "business", "name": subject.name}


def _when(rng: random.Random, kind: str) -> datetime:
    when = START + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
    if kind == "news" and when.weekday() >= 5:  # companies report on weekdays
        when += timedelta(days=7 - when.weekday())
    return when


@dataclass
class Writer:
    rng: random.Random
    desk: NewsDesk
    reviews: dict[str, dict[str, Any]]  # material by language
    leanings: dict[str, float]
    seen: set[str] = field(default_factory=set)

    def document(self, kind: str, lang: str, subject: Subject) -> Doc:
        """A new document about `subject`; never one whose text another already has."""
        for _ in range(100):
            when = _when(self.rng, kind)
            good = self.rng.random() < self.leanings[subject.name]
            if isinstance(subject, Company):
                title, body = self.desk.story(subject, good, when, lang)
            else:
                title, body = review(self.rng, self.reviews[lang], subject, good, lang)
            limit = MAX_CHARS.get((kind, lang), 10_000)
            while len(body) > limit and "\n\n" in body:
                body = body.rsplit("\n\n", 1)[0]
            if subject.name not in body:
                raise ValueError(f"the material lost the name {subject.name!r}: {body}")
            key = " ".join(unicodedata.normalize("NFKC", body).split())
            if len(body) <= limit and key not in self.seen:
                self.seen.add(key)
                doc = {"title": title, "body": body, "kind": kind, "language": lang}
                return doc | {"published_at": when.isoformat(), "subjects": [_ref(subject)]}
        raise ValueError(f"no new {lang} {kind} about {subject.name} in 100 tries")


def _address(doc: Doc, number: int) -> Doc:
    when = datetime.fromisoformat(doc["published_at"])
    if doc["kind"] == "news":
        slug = re.sub(r"[^a-z0-9]+", "-", doc["title"].lower()).strip("-")[:60] or "story"
        url = f"https://news.example.com/{doc['language']}/{when:%Y/%m/%d}/{slug}-{number}"
        return doc | {"external_id": f"news-{number}", "url": url}
    url = f"https://reviews.example.com/{doc['language']}/review/{number}"
    return doc | {"external_id": f"review-{number}", "url": url}


def corpus(rng: random.Random) -> dict[str, list[Doc]]:
    """The unique documents of each entry point, oldest first."""
    news = {lang: load(f"news-{lang}") for lang in ("en", "ko")}
    reviews = {lang: load(f"reviews-{lang}") for lang in ("en", "ko")}
    kinds: list[tuple[str, str, list[Subject]]] = [
        ("news", "en", list(COMPANIES_EN)),
        ("news", "ko", list(COMPANIES_KO)),
        ("review", "en", list(restaurants(reviews["en"]))),
        ("review", "ko", list(restaurants(reviews["ko"]))),
    ]
    decks = [
        _deck(rng, s, sum(plan[i] for plan in PLAN.values())) for i, (*_, s) in enumerate(kinds)
    ]
    leanings = {name: p for *_, s in kinds for name, p in _leanings(rng, s).items()}
    writer = Writer(rng, NewsDesk(rng, news), reviews, leanings)
    entry_points: dict[str, list[Doc]] = {}
    for point, counts in PLAN.items():
        docs = [
            writer.document(kind, lang, decks[i].pop())
            for i, (kind, lang, _) in enumerate(kinds)
            for _ in range(counts[i])
        ]
        docs.sort(key=lambda d: str(d["published_at"]))
        entry_points[point] = [_address(d, FIRST_ID[point] + n) for n, d in enumerate(docs)]
    return entry_points


# ---------------------------------------------------------------- duplicates and files


def exact_copy(doc: Doc, source_tag: str) -> Doc:
    # Same body from another publisher: a different document id, the same content hash.
    return {**doc, "external_id": f"{doc['external_id']}-{source_tag}", "url": None}


def _html(body: str) -> str:
    return "\n".join(f"<p>{escape(paragraph)}</p>" for paragraph in body.split("\n\n"))


def near_copy(doc: Doc, n: int) -> Doc:
    """Whitespace or HTML differences that normalise to the same text."""
    if n % 2:
        body = "  " + doc["body"].replace(" ", "   ", 3) + "\n\n"
        return {**doc, "external_id": f"{doc['external_id']}-ws", "url": None, "body": body}
    return {
        **doc,
        "external_id": f"{doc['external_id']}-html",
        "url": None,
        "content_type": "html",
        "body": _html(doc["body"]),
    }


def _record(doc: Doc, subjects: bool = True) -> Doc:
    """A document as its entry point hands it over: no null fields; subjects only where the
    publisher knows them."""
    return {k: v for k, v in doc.items() if v is not None and (subjects or k != "subjects")}


def _drop_record(doc: Doc) -> str:
    # A drop of scraped news does not know what its stories are about; review feeds do.
    return json.dumps(_record(doc, subjects=doc["kind"] == "review"), ensure_ascii=False)


def write_drop(docs: list[Doc], dups: list[Doc]) -> dict[str, Any]:
    drop = DATA / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    half = len(docs) // 2
    lines = [_drop_record(d) for d in docs[:half]]
    (drop / "news-batch-1.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rest = [json.loads(_drop_record(d)) for d in docs[half:] + dups]
    text = json.dumps(rest, ensure_ascii=False, indent=1) + "\n"
    (drop / "batch-2.json").write_text(text, encoding="utf-8")
    # A file of bad records only: it moves to failed/ with a .reason naming each line.
    bad = [
        '{"title": "Apple shares slip after the bell", "body": "Apple (AAPL) shares fell 3.1',
        '{"title": "no body", "kind": "news", "language": "en"}',
    ]
    (drop / "broken.jsonl").write_text("\n".join(bad) + "\n", encoding="utf-8")
    (drop / "not-json.json").write_text("this file is not JSON at all\n")
    return {
        "failed_files": {
            "broken.jsonl": ["line 1: not JSON", "line 2: body: Field required"],
            "not-json.json": ["not JSON"],
        }
    }


def write_feed(docs: list[Doc], dups: list[Doc]) -> None:
    """An RSS 2.0 wire: title, link, guid, pubDate and the story as HTML paragraphs."""
    items = []
    for d in docs + dups:
        link = d.get("url") or f"https://feed.example.com/{d['external_id']}"
        published = format_datetime(datetime.fromisoformat(d["published_at"]), usegmt=True)
        items.append(
            f"<item><title>{escape(d['title'])}</title><link>{escape(link)}</link>"
            f'<guid isPermaLink="false">{escape(d["external_id"])}</guid>'
            f"<pubDate>{published}</pubDate>"
            f"<description>{escape(_html(d['body']))}</description></item>"
        )
    rss = (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        "<title>Sift sample wire</title><link>https://feed.example.com/</link>"
        "<description>Business news in English and Korean</description>\n"
        + "\n".join(items)
        + "\n</channel></rss>\n"
    )
    (DATA / "feed.xml").write_text(rss, encoding="utf-8")


def write_json(name: str, content: dict[str, Any]) -> None:
    text = json.dumps(content, ensure_ascii=False, indent=1) + "\n"
    (DATA / name).write_text(text, encoding="utf-8")


def main() -> None:
    rng = random.Random(8)
    docs = corpus(rng)
    drop, feed, api, amqp = docs["drop"], docs["feed"], docs["api"], docs["amqp"]
    drop_news = [d for d in drop[20:] if d["kind"] == "news"]  # the wire carries news only
    drop_dups = [exact_copy(drop[i], "relay") for i in range(4)]
    drop_dups += [near_copy(drop[10 + i], i) for i in range(4)]
    feed_dups = [exact_copy(d, "wire") for d in drop_news[:3]]
    api_dups = [exact_copy(feed[i], "api") for i in range(3)]
    api_dups += [near_copy(api[5 + i], i) for i in range(4)]
    amqp_dups = [exact_copy(api[30 + i], "amqp") for i in range(3)]
    amqp_dups += [near_copy(amqp[i], i) for i in range(3)]
    failed = write_drop(drop, drop_dups)
    write_feed(feed, feed_dups)
    api_bad = [
        {**api[0], "external_id": "bad-1", "body": "<p> </p>", "content_type": "html"},
        {**api[1], "external_id": "bad-2", "url": "ftp://nowhere"},
        {"title": "no body at all", "source": "api"},
    ]
    amqp_bad = [
        {**amqp[0], "external_id": "bad-amqp-1", "body": "<br><br>", "content_type": "html"},
        {**amqp[1], "external_id": "bad-amqp-2", "url": "mailto:someone@example.com"},
    ]
    write_json(
        "api.json",
        {
            "documents": [_record(d) for d in api + api_dups],
            "malformed": [_record(d) for d in api_bad],
        },
    )
    write_json(
        "amqp.json",
        {
            "documents": [_record(d) for d in amqp + amqp_dups],
            "malformed_documents": [_record(d) for d in amqp_bad],
            "malformed_raw": ["{not json", '{"document": {"title": "no body"}}'],
        },
    )
    dups = {"directory": drop_dups, "feed": feed_dups, "api": api_dups, "amqp": amqp_dups}
    manifest: dict[str, Any] = {
        "valid_unique": {
            "directory": len(drop),
            "feed": len(feed),
            "api": len(api),
            "amqp": len(amqp),
        },
        "duplicates": {point: len(copies) for point, copies in dups.items()},
        "malformed": {
            "directory": failed["failed_files"],
            "api": {"refused_422": len(api_bad)},
            "amqp": {"intake_dlq": len(amqp_bad) + 2},
        },
    }
    manifest["total_valid_unique"] = sum(manifest["valid_unique"].values())
    manifest["total_duplicates"] = sum(manifest["duplicates"].values())
    manifest["total_dead_lettered"] = manifest["malformed"]["amqp"]["intake_dlq"]
    manifest["total_refused"] = len(api_bad)
    manifest["total_failed_records"] = 3
    (DATA / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
