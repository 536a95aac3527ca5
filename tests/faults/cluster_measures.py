"""What the cluster must-show judges, as pure functions: throughput back after the faults, and
chat calls per document at the gateway and at the FAKE replicas.

Throughput rule. Documents stored per second are counted in 5 s buckets of
`documents.stored_at` (10 s against the real vLLM replicas, tests/faults/cluster_vllm.py: at
~1 document/s a 5 s bucket holds too few documents to tell a dip from noise). The baseline is
the median rate of the whole buckets between the end of a warm-up (the first bucket after the
feed starts) and the first fault (a median: a bucket that catches up on the warm-up's backlog
does not raise the bar). From the last fault struck (the last kill; the restarts of what was
killed fall inside the window judged), buckets are laid again; throughput is back at the end of
the first bucket whose rate is at least 80 % of the baseline, and the must-show asks for that
within 30 s. Only buckets that end before the feed does count (after it, the rate falls for
want of input).
"""

import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.support.ledger import MARKER

BUCKET_S = 5.0
BACK_FRACTION = 0.8
BACK_WITHIN_S = 30.0
DOCUMENT_PREFIX = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Throughput:
    baseline_per_s: float
    buckets_before: list[float]
    buckets_after: list[float]  # from the last fault on
    back_after_s: float | None  # the end of the first bucket at ≥ 80 % of the baseline
    bucket_s: float = BUCKET_S

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket_s": self.bucket_s,
            "baseline_docs_per_s": round(self.baseline_per_s, 2),
            "docs_per_s_before": [round(rate, 2) for rate in self.buckets_before],
            "docs_per_s_after_last_fault": [round(rate, 2) for rate in self.buckets_after],
            "back_to_80_percent_after_s": self.back_after_s,
        }


def bucket_rates(
    stored: Iterable[float], start: float, end: float, bucket_s: float = BUCKET_S
) -> list[float]:
    """Stored documents per second in each whole `bucket_s` bucket from `start` to `end`."""
    count = int((end - start) // bucket_s)
    counts = [0] * max(count, 0)
    for moment in stored:
        index = int((moment - start) // bucket_s)
        if 0 <= index < count:
            counts[index] += 1
    return [n / bucket_s for n in counts]


def throughput(
    stored: list[float], feed_start: float, first_fault: float, last_fault: float,
    feed_end: float, bucket_s: float = BUCKET_S,
) -> Throughput:  # fmt: skip
    """The rule of this module's docstring; `stored` are commit times (epoch seconds)."""
    before = bucket_rates(stored, feed_start + bucket_s, first_fault, bucket_s)
    after = bucket_rates(stored, last_fault, feed_end, bucket_s)
    if not before:
        raise ValueError("no whole bucket between the warm-up and the first fault")
    baseline = statistics.median(before)
    back = next(
        (
            round((i + 1) * bucket_s, 1)
            for i, r in enumerate(after)
            if r >= BACK_FRACTION * baseline
        ),
        None,
    )
    return Throughput(baseline, before, after, back, bucket_s)


def gateway_answers(request_ids: Iterable[str]) -> Counter[str]:
    """Chat requests the gateway answered 200, per document (the id's first 16 hex characters;
    an entity digest's id is no document's). Repair turns are counted apart by their suffix."""
    counts: Counter[str] = Counter()
    for request_id in request_ids:
        prefix = request_id.split(":", 1)[0]
        if DOCUMENT_PREFIX.fullmatch(prefix) and not request_id.endswith(":repair"):
            counts[prefix] += 1
    return counts


def open_at(requests: Iterable[dict[str, Any]], at: float, grace_s: float) -> set[str]:
    """Markers of documents with a FAKE chat call open at `at` (monotonic, the FAKE's clock), or
    answered within `grace_s` before it: calls a kill may cut or orphan."""
    found: set[str] = set()
    for request in requests:
        done = request.get("done")
        if request["at"] <= at and (done is None or done >= at - grace_s):
            text = json.dumps(request["body"].get("messages", []))
            found.update(MARKER.findall(text))
    return found


def over_allowed(calls: Counter[str], allowed_twice: set[str]) -> dict[str, int]:
    """Documents called more often than once, plus once more when in `allowed_twice`."""
    return {key: n for key, n in calls.items() if n > 1 + (key in allowed_twice)}
