"""Digest refreshes: LLM calls of the novelty policy against a fixed interval, at equal staleness.

Simulated arrivals (bench/digest_traces.py: steady trickle, event bursts of near-duplicates,
a sentiment shift, a quiet entity, a topic that starts being covered; `--replicates` of each)
run through three policies, each asked at every arrival (the archiver's `entity.refresh`)
and at every scheduled refresh (hourly, the archiver's default):

* `today`: the analyzer before the policy: a digest whenever anything new arrived, and
  again once the interval (1 h) passed even with nothing new.
* `fixed <I>`: a digest when the interval I has passed and anything new arrived.
* `novelty`: sift_analyzer.refresh_policy itself (its defaults = the settings' defaults).

Staleness of a *material change* (a new cluster, or the score mean moving > 15 points; the
generator knows when each became material, at its third document) is the time from then
until a digest that has seen two of its documents (0 when one came earlier). The fixed
interval is tuned: the smallest I at which fixed is no fresher than novelty (mean and p95)
is the one at equal staleness, and its calls are the comparison. Routine staleness (every
document's wait for a digest) is reported too: it is what the novelty policy trades,
bounded by its SLA plus one scheduled round.

Run: `.venv/bin/python bench/digest_refresh.py` (or `make bench-digest`); results go to
`bench/results/digest_refresh.json`.
"""

import argparse
import bisect
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.digest_traces import DAY, HOUR, Trace, traces  # noqa: E402
from bench.machine import describe  # noqa: E402
from sift_analyzer import refresh_policy  # noqa: E402
from sift_analyzer.refresh_policy import RefreshPolicy  # noqa: E402

T0 = datetime(2026, 1, 5, tzinfo=UTC)
SCHEDULE_S = HOUR  # SIFT_ARCHIVER_REFRESH_EVERY_S
TODAY_INTERVAL_S = HOUR  # SIFT_ANALYZER_DIGEST_INTERVAL_S before the policy
GRID_MIN = [*range(5, 60, 5), *range(60, 241, 15), *range(270, 721, 30)]
THRESHOLDS = (1.5, 2.0, 3.0, 4.0, 6.0)
CONSTANTS = ("PER_DOCUMENT", "NEIGHBOUR_SLACK", "CENTRE_SLACK", "SCORE_SLACK", "CAP",
             "SCORE_FLOOR", "DRIFT_SLACK", "DRIFT_MIN", "MEMORY", "DUPLICATE")  # fmt: skip

# A policy: (trace, time now, last digest time or None, index of the first unseen doc) → go?
Decide = Callable[[Trace, float, float | None, int], tuple[bool, str]]


def triggers(trace: Trace, days: float) -> list[float]:
    """Every arrival, and every scheduled round (from the first document on)."""
    first = trace.docs[0].t if trace.docs else days * DAY
    rounds = np.arange(SCHEDULE_S, days * DAY, SCHEDULE_S)
    return sorted([d.t for d in trace.docs] + [t for t in rounds if t >= first])


def simulate(trace: Trace, days: float, decide: Decide) -> tuple[list[float], Counter[str]]:
    digests: list[float] = []
    reasons: Counter[str] = Counter()
    seen = 0  # documents up to the last digest
    times = [d.t for d in trace.docs]
    for t in triggers(trace, days):
        arrived = bisect.bisect_right(times, t)
        if arrived == 0:
            continue
        if not digests:
            go, reason = True, "first"
        else:
            go, reason = decide(trace, t, digests[-1], seen)
        reasons[reason] += 1
        if go:
            digests.append(t)
            seen = arrived
    return digests, reasons


def fixed(interval_s: float) -> Decide:
    def decide(trace: Trace, t: float, last: float | None, seen: int) -> tuple[bool, str]:
        unseen = any(d.t <= t for d in trace.docs[seen:])
        if not unseen:
            return False, "nothing_new"
        return (t - (last or 0) >= interval_s, "interval" if t - (last or 0) >= interval_s
                else "too_soon")  # fmt: skip

    return decide


def fixed_each(interval_s: float) -> Callable[[Trace], Decide]:
    """`fixed`, made anew for each trace as the other policies are."""
    return lambda _trace: fixed(interval_s)


def today(trace: Trace, t: float, last: float | None, seen: int) -> tuple[bool, str]:
    if t - (last or 0) >= TODAY_INTERVAL_S:
        return True, "interval"
    unseen = any(d.t <= t for d in trace.docs[seen:])
    return (True, "new_documents") if unseen else (False, "nothing_new")


class Prepared:
    """A trace's arrivals, and the baseline after each possible digest, built once and shared
    by every run of the policy (its thresholds): pure Python on 384-d vectors is slow."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.arrivals = [
            refresh_policy.arrival(_at(d.t), d.vector.tolist(), d.score) for d in trace.docs
        ]
        self.baselines: dict[int, refresh_policy.Baseline] = {}

    def baseline(self, seen: int) -> refresh_policy.Baseline:
        if seen not in self.baselines:
            # As DigestStore.baseline reads it: the mean vector, the latest documents (newest
            # first), and older ones sampled by a hash (here: a random key per document).
            docs, m = self.trace.docs[:seen], refresh_policy.MEMORY
            rep = np.mean([d.vector for d in docs], axis=0).tolist()
            latest = [(d.vector.tolist(), d.score) for d in reversed(docs[-m:])]
            older = [d.vector.tolist() for d in sorted(docs[:-m], key=lambda d: d.key)[:m]]
            self.baselines[seen] = refresh_policy.baseline_of(rep, latest, older)
        return self.baselines[seen]


class Novelty:
    """The real policy (by_time, then decide) on a prepared trace."""

    def __init__(self, policy: RefreshPolicy, prepared: Prepared) -> None:
        self.policy, self.prepared = policy, prepared

    def __call__(self, trace: Trace, t: float, last: float | None, seen: int) -> tuple[bool, str]:
        arrivals = self.prepared.arrivals[seen:]
        new = [a for d, a in zip(trace.docs[seen:], arrivals, strict=True) if d.t <= t]
        now, last_at = _at(t), _at(last or 0)
        decision = refresh_policy.by_time(self.policy, last_at, now, new)
        if decision is None:
            base = self.prepared.baseline(seen)
            decision = refresh_policy.decide(self.policy, last_at, now, new, base)
        return decision.refresh, decision.reason


def novelty_each(policy: RefreshPolicy, prepared: dict[str, Prepared]) -> Callable[[Trace], Decide]:
    """The novelty policy on each trace, with that trace's prepared arrivals and baselines."""
    return lambda trace: Novelty(policy, prepared[trace.entity])


def memoize_semantic() -> None:
    """A document's semantic novelty depends only on (baseline, vector), both kept alive by
    Prepared: the policy's own function, remembered, instead of recomputed per decision."""
    compute = refresh_policy.semantic
    known: dict[tuple[int, int], float] = {}

    def semantic(baseline: refresh_policy.Baseline, vector: Any) -> float:
        key = (id(baseline), id(vector))
        if key not in known:
            known[key] = compute(baseline, vector)
        return known[key]

    refresh_policy.semantic = semantic


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def staleness(traces_: list[Trace], digests: dict[str, list[float]], days: float) -> dict[str, Any]:
    """Material: change → first digest at or after it. Routine: document → same."""
    material, routine, censored = [], [], 0
    for trace in traces_:
        times = np.array(digests[trace.entity])
        for name, when in trace.changes.items():
            # The first digest that has seen enough of the change; 0 if before it was material.
            later = times[times >= trace.reflected[name]]
            censored += not later.size
            material.append(max((later[0] if later.size else days * DAY) - when, 0.0))
        for doc in trace.docs:
            later = times[times >= doc.t]
            routine.append((later[0] if later.size else days * DAY) - doc.t)
    return {
        "material": _stats(material) | {"censored": censored},
        "routine": _stats(routine),
    }


def _stats(waits: list[float]) -> dict[str, float]:
    minutes = np.array(waits) / 60
    return {
        "n": len(minutes),
        "mean_min": round(float(minutes.mean()), 1),
        "p95_min": round(float(np.percentile(minutes, 95)), 1),
        "max_min": round(float(minutes.max()), 1),
    }


def run_policy(
    traces_: list[Trace], days: float, make: Callable[[Trace], Decide]
) -> dict[str, Any]:
    digests: dict[str, list[float]] = {}
    reasons: Counter[str] = Counter()
    for trace in traces_:
        digests[trace.entity], counted = simulate(trace, days, make(trace))
        reasons += counted
    per_kind: Counter[str] = Counter()
    for trace in traces_:
        per_kind[trace.kind] += len(digests[trace.entity])
    return {
        "calls": sum(len(d) for d in digests.values()),
        "calls_by_kind": dict(per_kind),
        "decisions": dict(reasons),
        "staleness": staleness(traces_, digests, days),
        "_digests": digests,
    }


def check_traces(traces_: list[Trace], days: float) -> None:
    """The traces hold what the comparison is about, or the numbers mean nothing."""
    kinds = Counter(t.kind for t in traces_)
    changes = Counter(name for t in traces_ for name in t.changes)
    assert set(kinds) == {"steady trickle", "event bursts", "sentiment shift", "quiet", "new topic"}
    replicates = kinds["quiet"]
    for name in ("bad event", "good event", "score shift", "new topic"):
        assert changes[name] == replicates, f"{name}: in {changes[name]} of {replicates} traces"
    for trace in traces_:
        assert all(0 <= d.t < days * DAY for d in trace.docs)
        assert all(0 < when < days * DAY for when in trace.changes.values())
        near = [
            float(a.vector @ b.vector)
            for a, b in itertools.pairwise(trace.docs)
            if a.label == b.label and a.label.endswith("event")
        ]
        assert not near or min(near) > 0.9, f"{trace.entity}: burst copies are not near-duplicates"


def check_novelty(result: dict[str, Any], traces_: list[Trace], policy: RefreshPolicy) -> None:
    """The policy did what it claims on these traces: all its rules fired, none was broken."""
    decisions = result["decisions"]
    for reason in ("first", "novelty", "sla", "below_threshold", "min_interval", "nothing_new"):
        assert decisions.get(reason, 0) > 0, f"the policy never decided {reason!r}: {decisions}"
    min_gap = policy.min_interval.total_seconds()
    for trace in traces_:
        times = result["_digests"][trace.entity]
        assert all(b - a >= min_gap for a, b in itertools.pairwise(times)), trace.entity
    bound = (policy.sla.total_seconds() + SCHEDULE_S) / 60
    routine = result["staleness"]["routine"]
    # A document never waits past the SLA plus one scheduled round (until the trace ends).
    assert routine["max_min"] <= bound or result["staleness"]["material"]["censored"], routine


def equal_staleness(grid: dict[int, dict[str, Any]], novelty: dict[str, Any]) -> int:
    """The smallest interval (minutes) at which the fixed policy is no fresher than novelty."""
    target = novelty["staleness"]["material"]
    for minutes in sorted(grid):
        got = grid[minutes]["staleness"]["material"]
        if got["mean_min"] >= target["mean_min"] and got["p95_min"] >= target["p95_min"]:
            return minutes
    raise AssertionError("no fixed interval on the grid is as stale as the novelty policy")


def machine() -> dict[str, Any]:
    return describe(numpy=np.__version__)


def report(out: dict[str, Any]) -> None:
    rows = [("today (any new doc, 1 h)", out["today"]), ("novelty (defaults)", out["novelty"])]
    chosen = out["equal_staleness"]["fixed_interval_min"]
    rows.insert(1, (f"fixed {chosen} min (equal staleness)", out["fixed"][str(chosen)]))
    rows += [(f"fixed {m} min", out["fixed"][str(m)]) for m in (60, 240) if m != chosen]
    rows += [(f"novelty threshold {t}", out["thresholds"][str(t)]) for t in THRESHOLDS]
    header = f"{'policy':38} {'calls':>6} {'material mean/p95 min':>22}"
    print(f"\n{header} {'routine mean/p95 min':>21}")
    for name, r in rows:
        m, s = r["staleness"]["material"], r["staleness"]["routine"]
        material = f"{m['mean_min']:.0f} / {m['p95_min']:.0f}"
        routine = f"{s['mean_min']:.0f} / {s['p95_min']:.0f}"
        print(f"{name:38} {r['calls']:>6} {material:>22} {routine:>21}")
    e = out["equal_staleness"]
    print(
        f"\nLLM calls saved at equal staleness: {e['calls_saved']} of {e['fixed_calls']} "
        f"({e['saved_percent']:.0f} %); against today's code: "
        f"{e['saved_vs_today_percent']:.0f} %"
    )
    print("novelty calls by entity kind:", out["novelty"]["calls_by_kind"])
    print("fixed calls by entity kind:  ", out["fixed"][str(chosen)]["calls_by_kind"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--replicates", type=int, default=8, help="traces of each kind")
    parser.add_argument("--seed", type=int, default=20260105)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/digest_refresh.json")
    args = parser.parse_args()
    started = time.perf_counter()
    all_traces = traces(args.seed, args.days, args.replicates)
    check_traces(all_traces, args.days)
    policy = RefreshPolicy()
    memoize_semantic()
    prepared = {trace.entity: Prepared(trace) for trace in all_traces}
    novelty = run_policy(all_traces, args.days, novelty_each(policy, prepared))
    check_novelty(novelty, all_traces, policy)
    grid = {m: run_policy(all_traces, args.days, fixed_each(m * 60)) for m in GRID_MIN}
    chosen = equal_staleness(grid, novelty)
    current = run_policy(all_traces, args.days, lambda _t: today)
    thresholds = {
        t: run_policy(
            all_traces,
            args.days,
            novelty_each(RefreshPolicy(t, policy.sla, policy.min_interval), prepared),
        )
        for t in THRESHOLDS
    }
    saved = grid[chosen]["calls"] - novelty["calls"]
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "config": {
            "days": args.days,
            "replicates": args.replicates,
            "seed": args.seed,
            "entities": len(all_traces),
            "documents": sum(len(t.docs) for t in all_traces),
            "material_changes": sum(len(t.changes) for t in all_traces),
            "schedule_s": SCHEDULE_S,
            "policy": {k: str(v) for k, v in asdict(policy).items()},
            "policy_constants": {name: getattr(refresh_policy, name) for name in CONSTANTS},
        },
        "novelty": _public(novelty),
        "today": _public(current),
        "fixed": {str(m): _public(r) for m, r in grid.items()},
        "thresholds": {str(t): _public(r) for t, r in thresholds.items()},
        "equal_staleness": {
            "fixed_interval_min": chosen,
            "fixed_calls": grid[chosen]["calls"],
            "novelty_calls": novelty["calls"],
            "calls_saved": saved,
            "saved_percent": round(100 * saved / grid[chosen]["calls"], 1),
            "saved_vs_today_percent": round(100 * (1 - novelty["calls"] / current["calls"]), 1),
        },
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    report(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out} in {out['elapsed_s']} s")


def _public(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not k.startswith("_")}


if __name__ == "__main__":
    main()
