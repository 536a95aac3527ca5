"""Finding the poison in a failed batch: halves are tried again until each failure is one item's.

A batch is stored as a whole (one gateway call, one transaction), so one item the store refuses
fails every item with it. When a batch fails for a reason that is not transient, it is split in
two and each half tried again, recursively: the good items are stored at the cost of about
2·log2(n) extra attempts for one bad item, and an item that still fails alone gets its own
error. A transient failure is not split (the same attempt may succeed later): the items it
covers share it and go to the retry ladder together (`sift_common.classify.is_transient`
decides, as it does for the consumers).
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sift_common.classify import is_transient

ItemT = TypeVar("ItemT")
Outcome = Exception | None  # None: stored

logger = logging.getLogger("sift_archiver")


async def settle(
    items: Sequence[ItemT], attempt: Callable[[list[ItemT]], Awaitable[None]]
) -> list[Outcome]:
    """Run `attempt` on `items`, bisecting on non-transient failures; one outcome per item."""
    if not items:
        return []
    try:
        await attempt(list(items))
    except Exception as exc:
        if is_transient(exc):
            return [exc] * len(items)
        if len(items) == 1:
            return [exc]
        logger.warning("a batch of %d failed (%r); trying its halves", len(items), exc)
        middle = len(items) // 2
        first = await settle(items[:middle], attempt)
        return first + await settle(items[middle:], attempt)
    return [None] * len(items)
