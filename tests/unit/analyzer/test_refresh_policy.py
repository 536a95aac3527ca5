"""The digest refresh policy: novelty per document, accumulation, and the time rules."""

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from sift_analyzer import refresh_policy as rp
from sift_analyzer.refresh_policy import Arrival, Baseline, RefreshPolicy
from sift_analyzer.settings import AnalyzerSettings

DIM = 64
T0 = datetime(2026, 1, 10, 12, tzinfo=UTC)
POLICY = RefreshPolicy(threshold=3.0, sla=timedelta(hours=6), min_interval=timedelta(minutes=15))


def unit(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def near(rng: random.Random, centre: list[float], spread: float) -> list[float]:
    return unit([c + spread * rng.gauss(0, 1) / math.sqrt(DIM) for c in centre])


class Entity:
    """Synthetic coverage: an entity direction, topics around it, documents around a topic."""

    def __init__(self, seed: int = 1, topics: int = 2) -> None:
        self.rng = random.Random(seed)
        self.direction = unit([self.rng.gauss(0, 1) for _ in range(DIM)])
        self.topics = [self.topic() for _ in range(topics)]

    def topic(self) -> list[float]:
        return near(self.rng, self.direction, 0.7)

    def doc(self, topic: list[float] | None = None) -> list[float]:
        return near(self.rng, topic or self.rng.choice(self.topics), 0.5)

    def baseline(self, scores: list[float] | None = None) -> Baseline:
        latest = [(self.doc(), s) for s in (scores or [60.0, 62, 58, 65, 55, 61, 59, 63] * 2)]
        older = [self.doc() for _ in range(16)]
        rep = [sum(xs) / len(xs) for xs in zip(*[v for v, _ in latest], *older, strict=True)]
        return rp.baseline_of(rep, latest, older)


def arrivals(vectors: list[list[float]], scores: list[float | None], start: datetime) -> list:
    return [
        rp.arrival(start + timedelta(minutes=n), v, s)
        for n, (v, s) in enumerate(zip(vectors, scores, strict=True))
    ]


def test_ordinary_documents_add_little_more_than_their_count() -> None:
    entity = Entity()
    base = entity.baseline()
    docs = arrivals([entity.doc() for _ in range(10)], [60.0] * 10, T0)
    assert rp.accumulated(base, docs) == pytest.approx(10 * rp.PER_DOCUMENT, abs=0.3)


def test_a_new_topic_is_novel_and_the_representative_vector_alone_would_not_see_it() -> None:
    entity = Entity()
    base = entity.baseline()
    new_topic = entity.topic()
    doc = rp.unit(entity.doc(new_topic))
    assert doc is not None
    assert rp.semantic(base, doc) > 0.5
    # About as far from the mean as ordinary documents: the neighbours tell it apart better.
    assert base.representative is not None
    from_centre = rp.cosine_distance(doc, base.representative) / base.centre_scale
    from_neighbours = min(rp.cosine_distance(doc, m) for m in base.memory) / base.neighbour_scale
    assert from_centre < from_neighbours


def test_three_documents_on_a_new_topic_cross_the_default_threshold() -> None:
    entity = Entity()
    base = entity.baseline()
    topic = entity.topic()
    docs = arrivals([entity.doc(topic) for _ in range(3)], [60.0] * 3, T0)
    assert rp.accumulated(base, docs) >= POLICY.threshold
    assert rp.accumulated(base, docs[:1]) < POLICY.threshold


def test_one_outlier_score_cannot_refresh_alone_but_a_shift_does() -> None:
    entity = Entity()
    base = entity.baseline()
    one = arrivals([entity.doc()], [5.0], T0)
    assert rp.accumulated(base, one) < POLICY.threshold
    shifted = arrivals([entity.doc() for _ in range(3)], [20.0, 25.0, 18.0], T0)
    assert rp.accumulated(base, shifted) >= POLICY.threshold
    assert rp.drift(base, shifted) > 0


def test_a_burst_of_near_duplicates_is_novel_until_a_digest_has_seen_it() -> None:
    entity = Entity()
    base = entity.baseline()
    story = entity.doc(entity.topic())
    copies = [near(entity.rng, story, 0.1) for _ in range(20)]
    assert rp.semantic(base, rp.unit(copies[0])) > 0.5
    # After a digest that saw the first copies (they are among the latest documents) ...
    latest = [(v, 60.0) for v in copies[:3]] + [(entity.doc(), 60.0) for _ in range(13)]
    older = [entity.doc() for _ in range(16)]
    after = rp.baseline_of(story, latest, older)
    # ... the rest add nothing semantic; near-duplicates do not shrink what "near" means.
    assert all(rp.semantic(after, rp.unit(v)) == 0 for v in copies[3:])
    assert after.neighbour_scale > 5 * rp.cosine_distance(rp.unit(copies[0]), rp.unit(story))  # type: ignore[arg-type]


def test_a_robust_spread_is_not_widened_by_the_first_shifted_scores() -> None:
    entity = Entity()
    base = entity.baseline([78.0] * 13 + [20.0, 25.0, 30.0])
    assert base.score_centre == 78
    assert base.score_spread < rp.SCORE_FLOOR
    assert rp.deviation(base, 25.0) == rp.CAP


def test_time_rules_nothing_new_too_soon_sla() -> None:
    entity = Entity()
    base = entity.baseline()
    ordinary = arrivals([entity.doc()], [60.0], T0)
    assert rp.decide(POLICY, T0, T0, [], base) == rp.Decision(False, "nothing_new")
    soon = rp.decide(POLICY, T0, T0 + timedelta(minutes=5), ordinary, base)
    assert (soon.refresh, soon.reason, soon.unseen) == (False, "min_interval", 1)
    waiting = rp.decide(POLICY, T0, T0 + timedelta(hours=2), ordinary, base)
    assert (waiting.refresh, waiting.reason) == (False, "below_threshold")
    assert 0 < waiting.novelty < POLICY.threshold
    late = rp.decide(POLICY, T0, T0 + timedelta(hours=6, minutes=1), ordinary, base)
    assert (late.refresh, late.reason) == (True, "sla")


def test_the_minimum_interval_wins_over_novelty() -> None:
    entity = Entity()
    base = entity.baseline()
    topic = entity.topic()
    novel = arrivals([entity.doc(topic) for _ in range(5)], [10.0] * 5, T0)
    early = rp.decide(POLICY, T0, T0 + timedelta(minutes=10), novel, base)
    assert (early.refresh, early.reason) == (False, "min_interval")
    later = rp.decide(POLICY, T0, T0 + timedelta(minutes=16), novel, base)
    assert (later.refresh, later.reason) == (True, "novelty")
    assert later.novelty >= POLICY.threshold


def test_documents_without_vector_or_score_count_only_as_documents() -> None:
    base = Entity().baseline()
    blank = [Arrival(T0, None, None)] * 4
    assert rp.novelties(base, blank) == [rp.PER_DOCUMENT] * 4
    empty = rp.baseline_of(None, [])
    assert rp.accumulated(empty, arrivals([Entity().doc()], [90.0], T0)) == rp.PER_DOCUMENT


def test_a_young_entity_has_floors_not_zero_divisions() -> None:
    entity = Entity()
    young = rp.baseline_of(entity.doc(), [(entity.doc(), 50.0)])
    assert young.neighbour_scale == rp.SCALE_FLOOR
    assert young.score_spread == 0
    assert rp.accumulated(young, arrivals([entity.doc()], [95.0], T0)) > 1


def test_the_policy_refuses_an_sla_shorter_than_the_minimum_interval() -> None:
    with pytest.raises(ValueError, match="SLA"):
        RefreshPolicy(sla=timedelta(minutes=5), min_interval=timedelta(minutes=15))
    with pytest.raises(ValueError, match="positive"):
        RefreshPolicy(threshold=0)


def test_the_settings_defaults_are_the_policy_defaults() -> None:
    settings = AnalyzerSettings()
    assert settings.refresh_policy == RefreshPolicy()
    with pytest.raises(ValueError, match="SIFT_ANALYZER_DIGEST_SLA_S"):
        AnalyzerSettings(analyzer_digest_sla_s=60, analyzer_digest_min_interval_s=600)
