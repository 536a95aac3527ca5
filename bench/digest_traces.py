"""Simulated document arrivals for bench/digest_refresh.py: five kinds of entity over days.

Vectors are synthetic 384-d unit vectors with the geometry of real sentence embeddings of
one entity's coverage: an entity direction, topics around it (cosine ~0.67 between topics),
documents around a topic (~0.8 between documents of one topic), near-duplicates of one story
(~0.99). Scores are 0-100, 50 neutral, drawn per regime and clipped.

Each trace lists its *material changes* (ground truth, from the generator): a new cluster
(an event burst, or a topic that starts being covered) or a shift of the score mean by more
than SHIFT_POINTS. A change becomes material at its third document (one document is an
anecdote, three are a development; a shift once the mean of the shifted documents so far
has moved more than SHIFT_POINTS, from its third on), and a digest reflects it once it has
seen two of its documents (it is in the context: half of it is the latest documents).
"""

from dataclasses import dataclass, field

import numpy as np

DIM = 384
HOUR = 3600.0
DAY = 24 * HOUR
SHIFT_POINTS = 15.0  # a move of the score mean beyond this is material
MATERIAL_AT = 3  # the change's n-th document makes it material
REFLECTED_AT = 2  # a digest that has seen this many of its documents reflects it
TOPIC_SPREAD = 0.7  # topic centre = entity + this much noise → cos(topic, topic) ≈ 0.67
DOC_SPREAD = 0.5  # document = topic + this much noise → cos(doc, doc) ≈ 0.8 in one topic
DUPLICATE_SPREAD = 0.15  # near-duplicate = story + this much noise → cos ≈ 0.99


@dataclass
class Doc:
    t: float  # seconds since the start of the trace
    vector: np.ndarray
    score: float
    label: str  # "routine", or the name of the change it belongs to
    key: float = 0.0  # the store samples older documents by a hash of their id: this stands in


@dataclass
class Trace:
    entity: str
    kind: str
    docs: list[Doc] = field(default_factory=list)
    changes: dict[str, float] = field(default_factory=dict)  # name → when material
    reflected: dict[str, float] = field(default_factory=dict)  # name → digests from then on


def _unit(v: np.ndarray) -> np.ndarray:
    unit: np.ndarray = v / np.linalg.norm(v)
    return unit


def _near(rng: np.random.Generator, centre: np.ndarray, spread: float) -> np.ndarray:
    return _unit(centre + spread * rng.standard_normal(DIM) / np.sqrt(DIM))


def _poisson_times(
    rng: np.random.Generator, per_hour: float, start: float, end: float
) -> list[float]:
    times: list[float] = []
    t = start
    while True:
        t += rng.exponential(HOUR / per_hour)
        if t >= end:
            return times
        times.append(t)


def _score(rng: np.random.Generator, mean: float, std: float) -> float:
    return float(np.clip(rng.normal(mean, std), 0, 100))


class Builder:
    """One entity's trace: topics, routine documents, and changes on top."""

    def __init__(self, rng: np.random.Generator, entity: str, kind: str, topics: int) -> None:
        self.rng, self.trace = rng, Trace(entity, kind)
        self.direction = _unit(rng.standard_normal(DIM))
        self.topics = [self.new_topic() for _ in range(topics)]

    def new_topic(self) -> np.ndarray:
        return _near(self.rng, self.direction, TOPIC_SPREAD)

    def routine(self, per_hour: float, start: float, end: float, mean: float, std: float) -> None:
        for t in _poisson_times(self.rng, per_hour, start, end):
            topic = self.topics[self.rng.integers(len(self.topics))]
            vector = _near(self.rng, topic, DOC_SPREAD)
            self.add(Doc(t, vector, _score(self.rng, mean, std), "routine"))

    def burst(self, name: str, start: float, count: int, gap_min: float, mean: float) -> None:
        """Near-duplicate coverage of one story: `count` documents, ~`gap_min` apart."""
        story = _near(self.rng, self.new_topic(), DOC_SPREAD)
        t = start
        for _ in range(count):
            vector = _near(self.rng, story, DUPLICATE_SPREAD)
            self.add(Doc(t, vector, _score(self.rng, mean, 6), name))
            t += self.rng.exponential(gap_min * 60)

    def emerging(self, name: str, per_hour: float, start: float, end: float) -> None:
        """A topic that starts being covered (ordinary scores: only its meaning is new)."""
        topic = self.new_topic()
        for t in _poisson_times(self.rng, per_hour, start, end):
            self.add(Doc(t, _near(self.rng, topic, DOC_SPREAD), _score(self.rng, 60, 10), name))

    def add(self, doc: Doc) -> None:
        doc.key = float(self.rng.random())
        self.trace.docs.append(doc)

    def done(self) -> Trace:
        self.trace.docs.sort(key=lambda d: d.t)
        for name in {d.label for d in self.trace.docs} - {"routine"}:
            times = [d.t for d in self.trace.docs if d.label == name]
            assert len(times) >= MATERIAL_AT, f"{self.trace.entity}: {name} is too small"
            self.trace.changes[name] = times[MATERIAL_AT - 1]
            self.trace.reflected[name] = times[REFLECTED_AT - 1]
        return self.trace


def steady(rng: np.random.Generator, days: float, n: int) -> Trace:
    b = Builder(rng, f"steady-{n}", "steady trickle", topics=3)
    b.routine(1.5, 0, days * DAY, mean=62, std=12)
    return b.done()


def bursty(rng: np.random.Generator, days: float, n: int) -> Trace:
    b = Builder(rng, f"burst-{n}", "event bursts", topics=2)
    b.routine(0.5, 0, days * DAY, mean=60, std=10)
    b.burst("bad event", (1.3 + rng.uniform(0, 0.4)) * DAY, 40, gap_min=6, mean=25)
    b.burst("good event", (4.3 + rng.uniform(0, 0.4)) * DAY, 25, gap_min=8, mean=80)
    return b.done()


def shifting(rng: np.random.Generator, days: float, n: int) -> Trace:
    """Reviews turning sour: same topics, the score mean drops by ~40 points."""
    b = Builder(rng, f"shift-{n}", "sentiment shift", topics=2)
    onset = (2.5 + rng.uniform(0, 1)) * DAY
    b.routine(1.0, 0, onset, mean=78, std=10)
    before = [d.score for d in b.trace.docs]
    b.routine(1.0, onset, days * DAY, mean=35, std=12)
    trace = b.done()
    after = [d for d in trace.docs if d.t >= onset]
    # Material once the mean of the shifted documents so far has moved beyond SHIFT_POINTS.
    for k in range(MATERIAL_AT, len(after) + 1):
        if abs(np.mean([d.score for d in after[:k]]) - np.mean(before)) > SHIFT_POINTS:
            trace.changes["score shift"] = after[k - 1].t
            trace.reflected["score shift"] = after[REFLECTED_AT - 1].t
            break
    assert "score shift" in trace.changes, f"{trace.entity}: the shift never became material"
    return trace


def quiet(rng: np.random.Generator, days: float, n: int) -> Trace:
    b = Builder(rng, f"quiet-{n}", "quiet", topics=1)
    b.routine(1 / 20, 0, days * DAY, mean=55, std=10)
    return b.done()


def emerging(rng: np.random.Generator, days: float, n: int) -> Trace:
    b = Builder(rng, f"emerging-{n}", "new topic", topics=3)
    b.routine(2.0, 0, days * DAY, mean=60, std=10)
    start = (3 + rng.uniform(0, 1)) * DAY
    b.emerging("new topic", 0.5, start, days * DAY)
    return b.done()


KINDS = (steady, bursty, shifting, quiet, emerging)


def traces(seed: int, days: float, replicates: int) -> list[Trace]:
    rng = np.random.default_rng(seed)
    return [kind(rng, days, n) for n in range(replicates) for kind in KINDS]
