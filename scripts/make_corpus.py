"""Writes the bundled sample corpus under data/ (deterministic; rerun after editing).

News about 30 companies in English and Korean and restaurant reviews, split across the four
entry points the demo feeds: a directory drop, an RSS feed, the ingest API and AMQP intake.
Exact and near duplicates (whitespace or HTML differences, the same content hash after the
collector's normalisation) and a few malformed records are mixed in; data/MANIFEST.json
states what each entry point should produce.
"""

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

DATA = Path(__file__).resolve().parent.parent / "data"

COMPANIES_EN = [
    ("Apple", "AAPL"),
    ("Microsoft", "MSFT"),
    ("Nvidia", "NVDA"),
    ("Amazon", "AMZN"),
    ("Alphabet", "GOOGL"),
    ("Meta Platforms", "META"),
    ("Tesla", "TSLA"),
    ("Intel", "INTC"),
    ("AMD", "AMD"),
    ("Netflix", "NFLX"),
    ("Oracle", "ORCL"),
    ("Salesforce", "CRM"),
    ("Boeing", "BA"),
    ("Pfizer", "PFE"),
    ("Walmart", "WMT"),
    ("Nike", "NKE"),
    ("Ford", "F"),
    ("Exxon Mobil", "XOM"),
    ("JPMorgan Chase", "JPM"),
    ("Coca-Cola", "KO"),
]
COMPANIES_KO = [
    ("삼성전자", "005930"),
    ("SK하이닉스", "000660"),
    ("현대자동차", "005380"),
    ("LG에너지솔루션", "373220"),
    ("네이버", "035420"),
    ("카카오", "035720"),
    ("기아", "000270"),
    ("셀트리온", "068270"),
    ("포스코홀딩스", "005490"),
    ("LG화학", "051910"),
]
GOOD_EN = [
    "{n} ({t}) reported quarterly revenue up {p}% year on year, beating analyst estimates.",
    "{n} ({t}) raised its full-year guidance after strong demand in its core business.",
    "Shares of {n} ({t}) rose {p}% after the company announced a new buyback program.",
]
BAD_EN = [
    "{n} ({t}) cut its outlook and warned of falling margins; the stock fell {p}%.",
    "Regulators opened an investigation into {n} ({t}); shares dropped {p}% on the news.",
    "{n} ({t}) announced layoffs of {p} percent of staff as sales slowed.",
]
GOOD_KO = [
    "{n}({t})의 분기 매출이 전년 대비 {p}% 증가해 시장 예상을 웃돌았다.",
    "{n}({t}) 주가가 신제품 발표 이후 {p}% 상승했다.",
]
BAD_KO = [
    "{n}({t})가 실적 전망을 하향 조정하면서 주가가 {p}% 하락했다.",
    "{n}({t})에 대한 규제 당국의 조사가 시작되어 주가가 {p}% 떨어졌다.",
]
RESTAURANTS = [
    "Golden Dumpling House",
    "Casa Verde",
    "The Rusty Spoon",
    "Sakura Ramen Bar",
    "Le Petit Bistro",
    "Seoul Garden BBQ",
    "Blue Harbor Oysters",
    "Taco Libre",
    "Olive and Vine",
    "Midnight Diner",
    "Spice Route",
    "Burger Foundry",
]
GOOD_REVIEW = "{n}: {d} was excellent and the staff were friendly. Visit {i}, would return."
BAD_REVIEW = "{n}: {d} arrived cold and we waited {p} minutes. Visit {i}, disappointing."
DISHES = ["the noodles", "the steak", "the tasting menu", "the dumplings", "the tacos", "dessert"]


def _news(rng: random.Random, i: int, korean: bool) -> dict[str, Any]:
    name, ticker = rng.choice(COMPANIES_KO if korean else COMPANIES_EN)
    good = rng.random() < 0.5
    pool = (GOOD_KO if good else BAD_KO) if korean else (GOOD_EN if good else BAD_EN)
    body = rng.choice(pool).format(n=name, t=ticker, p=rng.randint(2, 40))
    body += f" (report {i})" if not korean else f" (보도 {i})"
    return {
        "title": f"{name} {ticker} update {i}",
        "body": body,
        "kind": "news",
        "language": "ko" if korean else "en",
        "external_id": f"news-{i}",
        "url": f"https://news.example.com/{'ko' if korean else 'en'}/{i}",
    }


def _review(rng: random.Random, i: int) -> dict[str, Any]:
    name = rng.choice(RESTAURANTS)
    template = GOOD_REVIEW if rng.random() < 0.5 else BAD_REVIEW
    body = template.format(n=name, d=rng.choice(DISHES), i=i, p=rng.randint(20, 90))
    return {
        "title": f"Review of {name}",
        "body": body,
        "kind": "review",
        "language": "en",
        "external_id": f"review-{i}",
        "url": f"https://reviews.example.com/{i}",
    }


def documents(rng: random.Random, count: int, start: int) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + count):
        roll = i % 10
        doc = _review(rng, i) if roll < 3 else _news(rng, i, korean=roll in (3, 4))
        doc["published_at"] = (datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=i)).isoformat()
        out.append(doc)
    return out


def exact_copy(doc: dict[str, Any], source_tag: str) -> dict[str, Any]:
    # Same body from another publisher: a different document id, the same content hash.
    return {**doc, "external_id": f"{doc['external_id']}-{source_tag}", "url": None}


def near_copy(doc: dict[str, Any], n: int) -> dict[str, Any]:
    """Whitespace or HTML differences that normalise to the same text."""
    body = doc["body"]
    if n % 2:
        return {
            **doc,
            "external_id": f"{doc['external_id']}-ws",
            "url": None,
            "body": "  " + body.replace(" ", "   ", 3) + "\n\n",
        }
    return {
        **doc,
        "external_id": f"{doc['external_id']}-html",
        "url": None,
        "content_type": "html",
        "body": f"<p>{escape(body)}</p>",
    }


def _without_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def write_drop(docs: list[dict[str, Any]], dups: list[dict[str, Any]]) -> dict[str, Any]:
    drop = DATA / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    half = len(docs) // 2
    lines = [json.dumps(_without_none(d), ensure_ascii=False) for d in docs[:half]]
    (drop / "news-batch-1.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rest = [_without_none(d) for d in docs[half:] + dups]
    (drop / "batch-2.json").write_text(json.dumps(rest, ensure_ascii=False, indent=1) + "\n")
    # A file with two bad records among valid ones: it moves to failed/ with a .reason; its
    # valid records are still published.
    bad = [json.dumps(_without_none(d), ensure_ascii=False) for d in dups[:0]]
    bad += ['{"title": "truncated record", "body": "Apple (AAPL) ro', '{"title": "no body"}']
    (drop / "broken.jsonl").write_text("\n".join(bad) + "\n", encoding="utf-8")
    (drop / "not-json.json").write_text("this file is not JSON at all\n")
    return {
        "failed_files": {
            "broken.jsonl": ["line 1: not JSON", "line 2: body: Field required"],
            "not-json.json": ["not JSON"],
        }
    }


def write_feed(docs: list[dict[str, Any]], dups: list[dict[str, Any]]) -> None:
    items = []
    for d in docs + dups:
        link = d.get("url") or f"https://feed.example.com/{d['external_id']}"
        items.append(
            f"<item><title>{escape(d['title'])}</title><link>{escape(link)}</link>"
            f"<guid>{escape(d['external_id'])}</guid>"
            f"<description>{escape(d['body'])}</description></item>"
        )
    rss = (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        "<title>Sift sample wire</title><link>https://feed.example.com/</link>"
        "<description>Sample news</description>\n" + "\n".join(items) + "\n</channel></rss>\n"
    )
    (DATA / "feed.xml").write_text(rss, encoding="utf-8")


def main() -> None:
    rng = random.Random(8)
    drop_docs = documents(rng, 110, 0)
    feed_docs = documents(rng, 50, 1000)
    api_docs = documents(rng, 80, 2000)
    amqp_docs = documents(rng, 60, 3000)
    drop_dups = [exact_copy(drop_docs[i], "relay") for i in range(4)] + [
        near_copy(drop_docs[10 + i], i) for i in range(4)
    ]
    feed_dups = [exact_copy(drop_docs[20 + i], "wire") for i in range(3)]
    api_dups = [exact_copy(feed_docs[i], "api") for i in range(3)] + [
        near_copy(api_docs[5 + i], i) for i in range(4)
    ]
    amqp_dups = [exact_copy(api_docs[30 + i], "amqp") for i in range(3)] + [
        near_copy(amqp_docs[i], i) for i in range(3)
    ]
    failed = write_drop(drop_docs, drop_dups)
    write_feed(feed_docs, feed_dups)
    api_bad = [
        {**api_docs[0], "external_id": "bad-1", "body": "<p> </p>", "content_type": "html"},
        {**api_docs[1], "external_id": "bad-2", "url": "ftp://nowhere"},
        {"title": "no body at all", "source": "api"},
    ]
    amqp_bad_docs = [
        {**amqp_docs[0], "external_id": "bad-amqp-1", "body": "<br><br>", "content_type": "html"},
        {**amqp_docs[1], "external_id": "bad-amqp-2", "url": "mailto:someone@example.com"},
    ]
    api = {
        "documents": [_without_none(d) for d in api_docs + api_dups],
        "malformed": [_without_none(d) for d in api_bad],
    }
    (DATA / "api.json").write_text(json.dumps(api, ensure_ascii=False, indent=1) + "\n")
    amqp = {
        "documents": [_without_none(d) for d in amqp_docs + amqp_dups],
        "malformed_documents": [_without_none(d) for d in amqp_bad_docs],
        "malformed_raw": ["{not json", '{"document": {"title": "no body"}}'],
    }
    (DATA / "amqp.json").write_text(json.dumps(amqp, ensure_ascii=False, indent=1) + "\n")
    manifest: dict[str, Any] = {
        "valid_unique": {"directory": 110, "feed": 50, "api": 80, "amqp": 60},
        "duplicates": {
            "directory": len(drop_dups),
            "feed": len(feed_dups),
            "api": len(api_dups),
            "amqp": len(amqp_dups),
        },
        "malformed": {
            "directory": failed["failed_files"],
            "api": {"refused_422": 3},
            "amqp": {"intake_dlq": 4},
        },
    }
    manifest["total_valid_unique"] = sum(manifest["valid_unique"].values())
    manifest["total_duplicates"] = sum(manifest["duplicates"].values())
    manifest["total_dead_lettered"] = 4
    manifest["total_refused"] = 3
    manifest["total_failed_records"] = 3
    (DATA / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
