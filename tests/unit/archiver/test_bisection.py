from collections.abc import Awaitable, Callable

import pytest

from sift_archiver.bisection import settle
from sift_archiver.poison import UnstorableDocumentError, blame
from sift_common.errors import TransientError
from sift_common.gateway_client import GatewayRequestError


class Refused(Exception):
    pass


def refusing(
    *poison: int, tried: list[list[int]] | None = None
) -> Callable[[list[int]], Awaitable[None]]:
    async def attempt(items: list[int]) -> None:
        if tried is not None:
            tried.append(items)
        bad = [item for item in items if item in poison]
        if bad:
            raise Refused(f"refused {bad}")

    return attempt


async def test_a_clean_batch_is_attempted_once() -> None:
    tried: list[list[int]] = []
    assert await settle([1, 2, 3], refusing(tried=tried)) == [None, None, None]
    assert tried == [[1, 2, 3]]


async def test_only_the_poison_fails_and_each_with_its_own_error() -> None:
    tried: list[list[int]] = []
    outcomes = await settle(list(range(8)), refusing(2, 7, tried=tried))
    assert [type(outcome) if outcome else None for outcome in outcomes] == [
        None, None, Refused, None, None, None, None, Refused,
    ]  # fmt: skip
    assert str(outcomes[2]) == "refused [2]"
    assert str(outcomes[7]) == "refused [7]"
    # 8 → 4 + 4 → 2 + 2 each → 1 + 1 for the halves holding the poison: 11 attempts.
    assert len(tried) == 11


@pytest.mark.parametrize(
    "error", [TransientError("database unavailable"), TimeoutError(), ConnectionResetError()]
)
async def test_a_transient_failure_is_not_bisected(error: Exception) -> None:
    tried: list[list[int]] = []

    async def down(items: list[int]) -> None:
        tried.append(items)
        raise error

    outcomes = await settle([1, 2, 3, 4], down)
    assert outcomes == [error] * 4
    assert tried == [[1, 2, 3, 4]]


async def test_an_empty_batch_settles_to_nothing() -> None:
    assert await settle([], refusing()) == []


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (GatewayRequestError(400, "input too long", None, "input"), True),
        (GatewayRequestError(404, "no such model", "model_not_found", "model"), False),
        (KeyError("a bug"), False),
    ],
)
def test_blame_marks_only_refused_input(error: Exception, refused: bool) -> None:
    blamed = blame("d" * 64, error)
    assert isinstance(blamed, UnstorableDocumentError) is refused
    if refused:
        assert str(blamed).startswith(f"document {'d' * 64} cannot be stored: GatewayRequestError")
        assert blamed.__cause__ is error
    else:
        assert blamed is error
