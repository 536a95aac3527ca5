"""The shared API-key mechanism: key tables (plain and `sha256:` entries), the key file
re-read when it changes (two keys valid during a rotation), the token buckets, and the guard's
order of checks with its failure counter."""

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sift_common.security.buckets import TokenBuckets
from sift_common.security.guard import KeyGuard, Refused
from sift_common.security.keys import KeyEntry, KeyFileError, KeyRing, parse_keys, weak_keys
from tests.support.security import key_entry, write_key_file

OLD_KEY = "o" * 40
NEW_KEY = "n" * 40


def test_plain_and_hashed_keys_identify_their_caller_and_nothing_else() -> None:
    table = {OLD_KEY: "plain", key_entry(NEW_KEY): KeyEntry(name="hashed", scopes=["admin"])}
    ring = KeyRing(parse_keys(table, ["inference"]))
    plain, hashed = (ring.identify(OLD_KEY), ring.identify(NEW_KEY))
    assert plain is not None
    assert plain.name == "plain"
    assert plain.scopes == {"inference"}
    assert hashed is not None
    assert hashed.name == "hashed"
    assert hashed.scopes == {"admin"}
    assert ring.identify(key_entry(NEW_KEY)) is None  # the hash itself is not a key
    assert ring.identify(OLD_KEY[:-1]) is None
    assert ring.identify("") is None


@pytest.mark.parametrize(
    "table",
    [{" ": "someone"}, {"k" * 40: " "}, {"sha256:abc": "short hash"}, {"sha256:" + "x" * 64: "x"}],
)
def test_malformed_tables_are_refused(table: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"blank|64 hex digits"):
        parse_keys(table, ["inference"])


def test_weak_keys_are_the_dev_key_and_short_plain_keys_only() -> None:
    keys = parse_keys({"dev-key": "dev", "short": "s", key_entry("x"): "h", OLD_KEY: "ok"}, [])
    problems = weak_keys(keys)
    assert len(problems) == 2
    assert "dev-key" in problems[0]
    assert "short" not in problems[0]
    assert "s has 5 characters" in problems[1]


def test_the_key_file_rotates_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_key_file(path, {OLD_KEY: "analyzer"}, 1_000_000)
    ring = KeyRing([], path, ["inference"])
    assert ring.identify(OLD_KEY) is not None
    assert ring.identify(NEW_KEY) is None
    write_key_file(path, {OLD_KEY: "analyzer", key_entry(NEW_KEY): "analyzer"}, 2_000_000)
    assert ring.identify(OLD_KEY) is not None  # both valid during the rotation
    assert ring.identify(NEW_KEY) is not None
    write_key_file(path, {key_entry(NEW_KEY): "analyzer"}, 3_000_000)
    assert ring.identify(OLD_KEY) is None
    assert ring.identify(NEW_KEY) is not None


def test_a_broken_or_weak_rewrite_keeps_the_keys_in_force(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_key_file(path, {NEW_KEY: "analyzer"}, 1_000_000)
    ring = KeyRing([], path, ["inference"], strict=True)
    path.write_text("{not json")
    os.utime(path, ns=(2_000_000_000, 2_000_000))
    assert ring.identify(NEW_KEY) is not None
    write_key_file(path, {"dev-key": "dev"}, 3_000_000)  # strict: production refuses it
    assert ring.identify("dev-key") is None
    assert ring.identify(NEW_KEY) is not None
    path.unlink()
    assert ring.identify(NEW_KEY) is not None
    with pytest.raises(KeyFileError):
        KeyRing([], path, ["inference"])


def test_buckets_refill_and_forget_the_least_recent() -> None:
    now = [0.0]
    buckets = TokenBuckets(2, 1.0, max_keys=2, clock=lambda: now[0])
    assert buckets.take("a") is None
    assert buckets.take("a") is None
    assert buckets.take("a") == pytest.approx(1.0)
    assert buckets.wait_s("a") == pytest.approx(1.0)
    now[0] = 0.5
    assert buckets.wait_s("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert buckets.wait_s("a") is None
    for key in ("b", "c", "d"):
        buckets.take(key)
    assert len(buckets._buckets) <= 2


def guard_with(
    table: dict[str, str | KeyEntry], failures: int = 3
) -> tuple[KeyGuard, CollectorRegistry]:
    registry = CollectorRegistry()
    return KeyGuard(
        KeyRing(parse_keys(table, ["inference"])), registry, failures_per_minute=failures
    ), registry


def failures(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("sift_auth_failures_total", {"reason": reason}) or 0.0


def test_the_guard_refuses_in_order_and_counts_each_failure() -> None:
    guard, registry = guard_with(
        {OLD_KEY: "caller", NEW_KEY: KeyEntry(name="ops", scopes=["admin"])}
    )
    assert guard.check(OLD_KEY, "10.0.0.1", "inference").name == "caller"
    refusals = []
    for presented, scope in ((None, "inference"), ("wrong", "inference"), (OLD_KEY, "admin")):
        with pytest.raises(Refused) as refused:
            guard.check(presented, "10.0.0.1", scope)
        refusals.append(refused.value.reason)
    assert refusals == ["missing", "unknown", "forbidden"]
    # Three failures spent the address's tokens: even the right key waits now.
    with pytest.raises(Refused) as throttled:
        guard.check(OLD_KEY, "10.0.0.1", "inference")
    assert throttled.value.reason == "throttled"
    assert throttled.value.retry_after_s is not None
    assert throttled.value.retry_after_s >= 1
    assert guard.check(OLD_KEY, "10.0.0.2", "inference").name == "caller"  # another address
    for reason in ("missing", "unknown", "forbidden", "throttled"):
        assert failures(registry, reason) == 1


def test_a_key_with_a_rate_is_limited_and_others_are_not() -> None:
    guard, registry = guard_with(
        {OLD_KEY: KeyEntry(name="batch", rate_per_s=0.01), NEW_KEY: "free"}
    )
    guard.check(OLD_KEY, "10.0.0.1", "inference")
    with pytest.raises(Refused) as limited:
        guard.check(OLD_KEY, "10.0.0.1", "inference")
    assert limited.value.reason == "rate_limited"
    assert limited.value.retry_after_s is not None
    assert limited.value.retry_after_s > 60
    for _ in range(20):
        guard.check(NEW_KEY, "10.0.0.1", "inference")
    assert failures(registry, "rate_limited") == 1


def test_a_key_with_a_token_budget_waits_once_its_answers_spent_it() -> None:
    guard, registry = guard_with({OLD_KEY: KeyEntry(name="digest", tokens_per_minute=60)})
    key = guard.check(OLD_KEY, "10.0.0.1", "inference")
    guard.charge(key, 40)
    guard.check(OLD_KEY, "10.0.0.1", "inference")  # 20 left: still in budget
    guard.charge(key, 80)  # an answer may overrun: the key is 60 tokens in debt now
    with pytest.raises(Refused) as limited:
        guard.check(OLD_KEY, "10.0.0.1", "inference")
    assert limited.value.reason == "token_limited"
    assert limited.value.retry_after_s == 61  # back above zero at one token per second
    assert failures(registry, "token_limited") == 1
