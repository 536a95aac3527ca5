"""An A/B split of an alias: weights over profiles (the arms), and the sticky pick of one arm.

Weights are whole percents, at least two arms, summing to 100: what an operator means by
"80/20", with no normalising to surprise anyone. A request is sent to the arm its sticky key
hashes to: blake2b of alias and key (not Python's `hash()`, which is salted per process), so
one document lands on the same arm on every replica and after restarts. The arms are taken
in name order (JSONB keeps no key order) and the hash point is mapped onto the cumulative
weights, so moving 80/20 to 50/50 moves only the keys between the old cut and the new one.
"""

import hashlib
import random
from collections.abc import Mapping
from urllib.parse import quote

STICKY_HEADER = "x-sift-sticky-key"
PROFILE_HEADER = "x-sift-profile"  # on every answer: the profile (the arm) that served it
REQUEST_ID_HEADER = "x-request-id"
TOTAL_WEIGHT = 100
_SPAN = 2**64  # the hash is 8 bytes


class WeightsError(ValueError):
    """Weights an operator cannot have meant; `field` names the part that is wrong."""

    def __init__(self, message: str, field: str = "weights") -> None:
        super().__init__(message)
        self.field = field


def parse_weights(raw: object) -> dict[str, int]:
    """`{"profile": percent, ...}` as sent: at least two arms, each a whole number ≥ 1
    (an arm at 0 is no arm: promote or switch instead), summing to 100."""
    if not isinstance(raw, dict) or len(raw) < 2:
        raise WeightsError(
            '\'weights\' must map at least two profiles to percents, e.g. {"a": 80, "b": 20}'
        )
    weights: dict[str, int] = {}
    for name, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise WeightsError(
                f"the weight of {name!r} must be a whole percent of at least 1", f"weights.{name}"
            )
        weights[str(name)] = weight
    total = sum(weights.values())
    if total != TOTAL_WEIGHT:
        raise WeightsError(f"'weights' must sum to {TOTAL_WEIGHT} (percents); they sum to {total}")
    return weights


def pick_arm(alias: str, weights: Mapping[str, int], sticky_key: str | None) -> str:
    """The arm for this key: the same on every replica; any arm, by weight, without a key."""
    total = sum(weights.values())
    if sticky_key is None:
        point = random.randrange(total)
    else:
        seed = f"{alias}\x00{sticky_key}".encode()  # the alias keeps two splits independent
        digest = hashlib.blake2b(seed, digest_size=8).digest()
        point = int.from_bytes(digest) * total // _SPAN
    for name in sorted(weights):
        point -= weights[name]
        if point < 0:
            return name
    raise AssertionError("the point lies below the total weight")


def primary_arm(weights: Mapping[str, int]) -> str:
    """The heaviest arm (the first by name on a tie): what `gateway.aliases.profile` holds
    during a split, so a replica that knows no weights still serves the bulk of the traffic."""
    return max(sorted(weights), key=weights.__getitem__)


def sticky_key_of(headers: Mapping[str, str]) -> str | None:
    """The caller's sticky key (the document id, the entity key), else its request id."""
    return headers.get(STICKY_HEADER) or headers.get(REQUEST_ID_HEADER) or None


def profile_header(profile: str) -> str:
    """A profile name as a header value: HTTP headers are ASCII, profile names need not be."""
    return quote(profile, safe="-_.:")
