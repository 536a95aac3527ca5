"""Entity checks: subjects win, model mentions are validated and merged by canonical key."""

import pytest

from sift_analyzer.entities import (
    KnownEntities,
    KnownEntity,
    canonical,
    clean_name,
    load_known_entities,
    refusal,
    select,
)
from sift_common.contracts import EntityMention, EntityRef
from sift_common.errors import ConfigError

KNOWN = load_known_entities()
COMPANY = frozenset({"company"})
TEXT = (
    "Samsung Electronics and Nvidia Corp signed a supply deal; 삼성전자 주가가 올랐다. "
    "Analysts at Keel Partners were positive. The dumplings arrived cold."
)


def mention(name: str, kind: str = "company", ticker: str | None = None) -> EntityMention:
    return EntityMention(kind=kind, name=name, ticker=ticker)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Burger Foundry: the dumplings arrived cold and we waited 34", "sentence"),
        ("negative", "not_a_name"),
        ("긍정", "not_a_name"),
        ("Oxycocia", "not_in_text"),
        ("trattoria_sole_sole_sole_sole", "not_in_text"),
        ("dumplings", "not_a_proper_noun"),
        ("100", "no_letter"),
        ("A Very Long Name With Far Too Many Words In It", "too_long"),
    ],
)
def test_junk_mentions_are_refused_with_a_reason(name: str, reason: str) -> None:
    assert refusal(KNOWN, mention(name), TEXT, COMPANY) == reason


def test_a_mention_of_an_untracked_kind_is_refused() -> None:
    assert refusal(KNOWN, mention("Keel Partners", "person"), TEXT, COMPANY) == "untracked_kind"


@pytest.mark.parametrize("name", ["Keel Partners", "Nvidia", "삼성전자", "Samsung Electronics"])
def test_real_names_in_the_text_pass(name: str) -> None:
    assert refusal(KNOWN, mention(name), TEXT, COMPANY) is None


def test_a_known_alias_counts_as_in_the_text() -> None:
    # "Samsung" is not written alone, but the entity it resolves to is.
    assert refusal(KNOWN, mention("Samsung"), TEXT, COMPANY) is None


def test_short_aliases_match_whole_words_only() -> None:
    assert refusal(KNOWN, mention("MS"), "Its items sold well.", COMPANY) == "not_in_text"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (EntityRef(kind="company", name="삼성전자"), ("Samsung Electronics", "005930")),
        (EntityRef(kind="company", name="samsung  electronics"), ("Samsung Electronics", "005930")),
        (EntityRef(kind="company", name="Anything", ticker="nvda"), ("Nvidia", "NVDA")),
        (EntityRef(kind="company", name="005930"), ("Samsung Electronics", "005930")),
        (EntityRef(kind="company", name="Globex Corp."), ("Globex", None)),
        (EntityRef(kind="business", name="“Luigi's”"), ("Luigi's", None)),
    ],
)
def test_names_resolve_to_one_canonical_form(ref: EntityRef, expected: tuple[str, str]) -> None:
    resolved = canonical(KNOWN, ref, None)
    assert (resolved.name, resolved.ticker) == expected


def test_subjects_win_and_mentions_of_them_add_nothing() -> None:
    chosen = select(
        KNOWN,
        subjects=[EntityRef(kind="company", name="삼성전자", ticker="005930")],
        mentions=[mention("Samsung"), mention("Nvidia"), mention("Oxycocia"), mention("negative")],
        text=TEXT,
        kinds=COMPANY,
        score=80.0,
    )
    assert [(m.name, m.ticker, m.score) for m in chosen.mentions] == [
        ("Samsung Electronics", "005930", 80.0),
        ("Nvidia", "NVDA", 80.0),
    ]
    assert chosen.refused == {"not_in_text": 1, "not_a_name": 1}


def test_a_subject_is_kept_even_when_the_text_never_names_it() -> None:
    chosen = select(
        KNOWN,
        subjects=[EntityRef(kind="business", name="Casa Luna")],
        mentions=[],
        text="Great pasta, slow service.",
        kinds=frozenset({"business"}),
        score=60.0,
    )
    assert [(m.kind, m.name) for m in chosen.mentions] == [("business", "Casa Luna")]


def test_legal_forms_are_dropped_but_a_lone_word_stays() -> None:
    assert clean_name("Acme Holdings Inc.") == "Acme"
    assert clean_name("Group") == "Group"


def test_a_broken_alias_table_names_the_variable(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "known.yaml"
    path.write_text("- {kind: company}\n")
    with pytest.raises(ConfigError, match="SIFT_ANALYZER_KNOWN_ENTITIES"):
        load_known_entities(path)


def test_the_bundled_table_has_no_alias_for_two_entities() -> None:
    seen: dict[str, str] = {}
    for alias, entity in KNOWN.by_alias.items():
        assert seen.setdefault(alias, entity.name) == entity.name
    assert KnownEntities.of([KnownEntity(kind="company", name="X")]).find("x", None) is not None


MERGER = "Exxon Mobil agreed to buy Pioneer. Mobil stations will keep their name; Bank of Korea"


def test_part_of_another_name_of_the_document_adds_nothing() -> None:
    chosen = select(
        KNOWN,
        subjects=[EntityRef(kind="company", name="Exxon Mobil")],
        mentions=[mention("Mobil"), mention("Pioneer"), mention("Exxon Mobil")],
        text=MERGER,
        kinds=COMPANY,
        score=65.0,
    )
    assert [m.name for m in chosen.mentions] == ["Exxon Mobil", "Pioneer"]
    assert chosen.refused == {"part_of_a_name": 1}


def test_parts_are_merged_into_a_mentioned_name_but_only_of_their_own_kind() -> None:
    kinds = frozenset({"company", "place"})
    chosen = select(
        KNOWN,
        subjects=[],
        mentions=[
            mention("Mobil"),
            mention("Exxon Mobil"),
            mention("Korea", "place"),
            mention("Bank of Korea"),
        ],
        text=MERGER,
        kinds=kinds,
        score=None,
    )
    assert [(m.kind, m.name) for m in chosen.mentions] == [
        ("company", "Exxon Mobil"),
        ("place", "Korea"),
        ("company", "Bank of Korea"),
    ]


def test_a_known_entity_is_never_merged_into_a_longer_name() -> None:
    text = "Samsung Electronics and Samsung Electronics America both grew."
    chosen = select(
        KNOWN,
        subjects=[],
        mentions=[mention("Samsung Electronics"), mention("Samsung Electronics America")],
        text=text,
        kinds=COMPANY,
        score=None,
    )
    assert [m.name for m in chosen.mentions] == [
        "Samsung Electronics",
        "Samsung Electronics America",
    ]
