"""When a new entity digest is worth an LLM call: novelty-driven, with a freshness SLA.

A fixed interval spends a call on every entity that got *anything* new, however alike the
new documents are to what the digest already covered. Here each document that arrived since
the last digest carries a novelty, and the digest is redone when their sum crosses a
threshold (review-analysis systems refresh summaries the same way: on volume times change):

    novelty(doc) = PER_DOCUMENT                       every document counts a little (volume)
                 + semantic: how much farther the document lies from what the digest saw
                   than usual — from the representative vector (relative to the usual
                   distance from it), or from its remembered neighbours (its second-nearest
                   remembered document, relative to the usual such distance), whichever is
                   more unusual
                 + deviation: how many standard deviations its score lies from the scores
                   of the latest documents the digest saw
    accumulated  = Σ novelty(doc) + drift, drift = how far the new documents' mean score
                   moved, as a z-statistic (a consistent small shift adds up even when no
                   single document is an outlier)

Both per-document terms subtract a slack (ordinary variation adds nothing) and are capped
below the default threshold (one document odd in meaning *or* in score cannot force a
refresh alone; one odd in both can).

Why remembered documents and not only the mean vector: in an embedding space every
document about an entity lies about equally far from the entity's mean, a new topic
included; only its distance to the documents already seen tells it apart. Why the *second*
nearest: a topic the digest has seen once is still news (one document is an anecdote), one
it has seen twice is covered — so a burst of near-duplicates costs about one digest once a
digest has seen two copies, and a digest made on a new topic's first document does not mute
the next two. The memory is the latest MEMORY documents at the digest's time plus MEMORY
older ones sampled across the entity's history, so a burst that fills the latest slots does
not make the entity's usual topics look new.

Time rules wrap the sum: nothing unseen → no call; never more often than `min_interval`;
a document never waits longer than `sla` for a digest that covers it. Everything here is
pure: the store reads the vectors and scores, the digester acts on the decision, and the
bench (bench/digest_refresh.py) runs this same code on simulated traces.
"""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import mul
from typing import Literal

Vector = tuple[float, ...]
Scored = tuple[Sequence[float] | None, float | None]  # a document's vector and score

PER_DOCUMENT = 0.1  # 30 ordinary documents add up to the default threshold on their own
# Ordinary variation adds nothing: up to 1.2 usual distances to the remembered neighbours
# (a new topic lies ~2 such distances away), twice the usual distance from the
# representative vector (every document of the entity lies about equally far from it, so
# only a document about something else stands out there), 1.5 standard deviations of score.
NEIGHBOUR_SLACK = 1.2
CENTRE_SLACK = 2.0
SCORE_SLACK = 1.5
CAP = 2.0  # the most one document's semantic or score term adds: below the threshold
SCORE_FLOOR = 10.0  # points: a std estimated from a few alike scores must not blow z up
SCALE_FLOOR = 0.02  # cosine distance: an entity with one document has no spread yet
DRIFT_SLACK = 3.0  # z of the new documents' mean score below this is noise
DRIFT_MIN = 3  # scores it takes to speak of a distribution (one is the deviation's business)
MEMORY = 16  # latest documents remembered, and as many older ones sampled
# Closer than this fraction of the usual distance from the representative: a near-duplicate
# (syndicated copies of one story), counted once when measuring the usual neighbour distance.
DUPLICATE = 0.3


@dataclass(frozen=True)
class RefreshPolicy:
    threshold: float = 3.0
    sla: timedelta = timedelta(hours=6)
    min_interval: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.threshold <= 0 or self.min_interval < timedelta(0) or self.sla <= timedelta(0):
            raise ValueError("threshold and sla must be positive, min_interval not negative")
        if self.sla < self.min_interval:
            raise ValueError("the freshness SLA cannot be shorter than the minimum interval")


@dataclass(frozen=True)
class Arrival:
    """A document linked to the entity since the last digest (unit vector, its score)."""

    stored_at: datetime
    vector: Vector | None
    score: float | None


@dataclass(frozen=True)
class Baseline:
    """What the last digest saw, and what "usual" meant for it."""

    representative: Vector | None  # unit
    memory: tuple[Vector, ...]  # unit vectors of the remembered documents
    neighbour_scale: float  # median distance of a remembered document to its 2nd-nearest
    centre_scale: float  # mean distance of the remembered documents from the representative
    score_centre: float | None  # median score of the latest documents
    score_spread: float  # their median absolute deviation, as a standard deviation


Reason = Literal["first", "nothing_new", "min_interval", "sla", "novelty", "below_threshold"]


@dataclass(frozen=True)
class Decision:
    refresh: bool
    reason: Reason
    novelty: float = 0.0
    unseen: int = 0


def unit(vector: Sequence[float] | None) -> Vector | None:
    """The vector scaled to length 1 (so cosine is a dot product); None for none or zero."""
    if vector is None:
        return None
    norm = math.sqrt(sum(x * x for x in vector))
    return tuple(x / norm for x in vector) if norm > 0 else None


def cosine_distance(a: Vector, b: Vector) -> float:
    return 1.0 - float(sum(map(mul, a, b)))


def arrival(stored_at: datetime, vector: Sequence[float] | None, score: float | None) -> Arrival:
    return Arrival(stored_at, unit(vector), score)


def baseline_of(
    representative: Sequence[float] | None,
    latest: Sequence[Scored],
    older: Sequence[Sequence[float] | None] = (),
) -> Baseline:
    """The baseline of a digest from the representative vector at its time, the latest
    documents then (newest first) and a sample of older ones; MEMORY of each are kept."""
    rep = unit(representative)
    vectors = [vector for vector, _ in latest[:MEMORY]] + list(older[:MEMORY])
    memory = tuple(v for v in map(unit, vectors) if v is not None)
    centre, spread = _robust([score for _, score in latest[:MEMORY] if score is not None])
    centre_scale = _centre_scale(rep, memory)
    return Baseline(
        representative=rep,
        memory=memory,
        neighbour_scale=_neighbour_scale(memory, centre_scale),
        centre_scale=centre_scale,
        score_centre=centre,
        score_spread=spread,
    )


def _robust(scores: list[float]) -> tuple[float | None, float]:
    """Median, and the median absolute deviation as a standard deviation: the first
    documents of a shift, already among the latest, must not widen the spread they are
    measured against."""
    if not scores:
        return None, 0.0
    centre = float(statistics.median(scores))
    return centre, 1.4826 * float(statistics.median(abs(s - centre) for s in scores))


def _neighbour_scale(memory: tuple[Vector, ...], centre_scale: float) -> float:
    """Median distance of a remembered document to its second-nearest other, near-duplicates
    collapsed first: a burst's copies among the remembered documents must not shrink what
    "near" means for everything else."""
    distinct: list[Vector] = []
    for vector in memory:
        if all(cosine_distance(vector, kept) >= DUPLICATE * centre_scale for kept in distinct):
            distinct.append(vector)
    if len(distinct) < 3:
        return SCALE_FLOOR
    usual = [
        _second_nearest(v, [m for j, m in enumerate(distinct) if j != i])
        for i, v in enumerate(distinct)
    ]
    return max(float(statistics.median(usual)), SCALE_FLOOR)


def _second_nearest(vector: Vector, others: Sequence[Vector]) -> float:
    """Distance to the second-nearest of `others` (the nearest when there is one)."""
    distances = sorted(cosine_distance(vector, other) for other in others)
    return distances[min(1, len(distances) - 1)]


def _centre_scale(rep: Vector | None, memory: tuple[Vector, ...]) -> float:
    if rep is None or not memory:
        return SCALE_FLOOR
    return max(statistics.fmean(cosine_distance(v, rep) for v in memory), SCALE_FLOOR)


def by_time(
    policy: RefreshPolicy, last_at: datetime, now: datetime, arrivals: Sequence[Arrival]
) -> Decision | None:
    """The decision when time alone settles it, else None (then novelty decides)."""
    if not arrivals:
        return Decision(False, "nothing_new")
    if now - last_at < policy.min_interval:
        return Decision(False, "min_interval", unseen=len(arrivals))
    if now - min(a.stored_at for a in arrivals) >= policy.sla:
        return Decision(True, "sla", unseen=len(arrivals))
    return None


def decide(
    policy: RefreshPolicy,
    last_at: datetime,
    now: datetime,
    arrivals: Sequence[Arrival],
    baseline: Baseline,
) -> Decision:
    settled = by_time(policy, last_at, now, arrivals)
    if settled is not None:
        return settled
    total = accumulated(baseline, arrivals)
    reason: Reason = "novelty" if total >= policy.threshold else "below_threshold"
    return Decision(reason == "novelty", reason, novelty=total, unseen=len(arrivals))


def accumulated(baseline: Baseline, arrivals: Sequence[Arrival]) -> float:
    return sum(novelties(baseline, arrivals)) + drift(baseline, arrivals)


def novelties(baseline: Baseline, arrivals: Sequence[Arrival]) -> list[float]:
    """Each arrival's novelty, in the order given."""
    return [
        PER_DOCUMENT + semantic(baseline, doc.vector) + deviation(baseline, doc.score)
        for doc in arrivals
    ]


def semantic(baseline: Baseline, vector: Vector | None) -> float:
    if vector is None:
        return 0.0
    excess = [0.0]
    if baseline.representative is not None:
        distance = cosine_distance(vector, baseline.representative)
        excess.append(distance / baseline.centre_scale - CENTRE_SLACK)
    if baseline.memory:
        distance = _second_nearest(vector, baseline.memory)
        excess.append(distance / baseline.neighbour_scale - NEIGHBOUR_SLACK)
    return min(max(excess), CAP)


def deviation(baseline: Baseline, score: float | None) -> float:
    if score is None or baseline.score_centre is None:
        return 0.0
    z = abs(score - baseline.score_centre) / max(baseline.score_spread, SCORE_FLOOR)
    return min(max(z - SCORE_SLACK, 0.0), CAP)


def drift(baseline: Baseline, arrivals: Sequence[Arrival]) -> float:
    """How far the new documents' mean score moved from the digest's, beyond noise."""
    scores = [a.score for a in arrivals if a.score is not None]
    if len(scores) < DRIFT_MIN or baseline.score_centre is None:
        return 0.0
    spread = max(baseline.score_spread, SCORE_FLOOR) / math.sqrt(len(scores))
    z = abs(statistics.fmean(scores) - baseline.score_centre) / spread
    return max(z - DRIFT_SLACK, 0.0)
