"""The gateway's kept answers: keyed by caller, id and body; bounded; expiring."""

import asyncio

from sift_gateway.replay import Kept, Replays, replay_key


def test_the_key_tells_callers_ids_and_bodies_apart() -> None:
    base = replay_key("analyzer", "doc:analysis", b"{}")
    assert base == replay_key("analyzer", "doc:analysis", b"{}")
    assert base != replay_key("batch", "doc:analysis", b"{}")
    assert base != replay_key("analyzer", "doc:repair", b"{}")
    assert base != replay_key("analyzer", "doc:analysis", b"{ }")


async def test_answers_are_bounded_oldest_first_and_expire() -> None:
    replays = Replays(ttl_s=0.2, max_answers=2)
    for key in ("a", "b", "c"):
        with replays.owning(key) as keeper:
            keeper.keep(Kept(key.encode(), "main"))
    assert await replays.answer_for("a") is None
    assert await replays.answer_for("c") == (Kept(b"c", "main"), "kept")
    await asyncio.sleep(0.25)
    assert await replays.answer_for("b") is None
    assert await replays.answer_for("c") is None


async def test_a_call_that_keeps_nothing_hands_its_waiters_nothing() -> None:
    replays = Replays(ttl_s=60, max_answers=8)
    with replays.owning("k"):
        waiter = asyncio.create_task(replays.answer_for("k"))
        await asyncio.sleep(0)
    assert await waiter is None  # the waiter then makes its own call
    assert not Replays(ttl_s=0, max_answers=8).enabled
