"""The A/B split's pure core: weights an operator can mean, and a sticky pick that is the same
in every process (blake2b, not the salted `hash()`), lands on the weights, and moves only the
keys between the old cut and the new one when the weights change."""

import hashlib
import subprocess
import sys
from collections import Counter

import pytest

from sift_gateway.split import WeightsError, parse_weights, pick_arm, primary_arm, sticky_key_of

KEYS = [hashlib.sha256(f"doc-{n}".encode()).hexdigest() for n in range(20_000)]


def test_an_80_20_split_lands_within_a_point_over_20_000_keys() -> None:
    counts = Counter(pick_arm("chat", {"a": 80, "b": 20}, key) for key in KEYS)
    assert abs(counts["a"] / len(KEYS) - 0.80) < 0.01, counts


def test_the_pick_is_the_same_in_another_process() -> None:
    """Python's `hash()` of a str differs between processes; the pick must not."""
    here = [pick_arm("chat", {"a": 50, "b": 50}, key) for key in KEYS[:200]]
    code = (
        "import hashlib; from sift_gateway.split import pick_arm; "
        "keys = [hashlib.sha256(f'doc-{n}'.encode()).hexdigest() for n in range(200)]; "
        "print(''.join(pick_arm('chat', {'b': 50, 'a': 50}, k) for k in keys))"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert there.stdout.strip() == "".join(here)  # the order the weights came in is no matter


def test_reweighing_moves_only_the_keys_between_the_cuts() -> None:
    before = {key: pick_arm("chat", {"a": 80, "b": 20}, key) for key in KEYS}
    after = {key: pick_arm("chat", {"a": 50, "b": 50}, key) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(before[key] == "a" and after[key] == "b" for key in moved)
    assert abs(len(moved) / len(KEYS) - 0.30) < 0.01


def test_two_aliases_split_independently() -> None:
    chat = [pick_arm("chat", {"a": 50, "b": 50}, key) for key in KEYS[:2000]]
    other = [pick_arm("digest", {"a": 50, "b": 50}, key) for key in KEYS[:2000]]
    same = sum(x == y for x, y in zip(chat, other, strict=True))
    assert 0.45 < same / 2000 < 0.55  # uncorrelated, not the same documents on the same arm


def test_without_a_key_the_pick_follows_the_weights() -> None:
    counts = Counter(pick_arm("chat", {"a": 90, "b": 10}, None) for _ in range(5000))
    assert 0.87 < counts["a"] / 5000 < 0.93


def test_the_sticky_key_falls_back_to_the_request_id() -> None:
    assert sticky_key_of({"x-sift-sticky-key": "doc", "x-request-id": "r"}) == "doc"
    assert sticky_key_of({"x-request-id": "r"}) == "r"
    assert sticky_key_of({}) is None


def test_the_heaviest_arm_is_primary_ties_by_name() -> None:
    assert primary_arm({"b": 80, "a": 20}) == "b"
    assert primary_arm({"b": 50, "a": 50}) == "a"


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        ({"a": 100}, "weights", "at least two"),
        ([80, 20], "weights", "at least two"),
        ({"a": 80, "b": 30}, "weights", "sum to 100"),
        ({"a": 100, "b": 0}, "weights.b", "at least 1"),
        ({"a": 79.5, "b": 20.5}, "weights.a", "whole percent"),
        ({"a": True, "b": 99}, "weights.a", "whole percent"),
    ],
)
def test_weights_an_operator_cannot_mean_are_refused_naming_the_field(
    raw: object, field: str, says: str
) -> None:
    with pytest.raises(WeightsError, match=says) as refused:
        parse_weights(raw)
    assert refused.value.field == field


def test_weights_as_meant_are_taken() -> None:
    assert parse_weights({"a": 80, "b": 20}) == {"a": 80, "b": 20}
    assert parse_weights({"a": 34, "b": 33, "c": 33}) == {"a": 34, "b": 33, "c": 33}
