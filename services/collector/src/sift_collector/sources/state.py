"""Per-source state shared by every collector replica, in Redis.

    <prefix>sift:source-lock:<name>     the lease lock a poll runs under (see sift_common.locks)
    <prefix>sift:source-state:<name>    hash: `state` (SourceState JSON), `fence`
    <prefix>sift:source-cursor:<name>   the Cursor JSON

Pure transitions decide when a source is due next. State and cursor are written together by
one script that refuses a fencing token older than the one stored, so a replica whose lease
ran out mid-poll cannot overwrite a newer holder's.
"""

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from sift_collector.sources.base import Cursor
from sift_collector.sources.config import DEFAULT_TIERS, SourceConfig, Tier

MAX_ERROR_CHARS = 500

# KEYS[1] state hash, KEYS[2] cursor; ARGV[1] fence, ARGV[2] state JSON, ARGV[3] cursor or ''.
_SAVE = """
local stored = tonumber(redis.call('hget', KEYS[1], 'fence') or '0')
if stored > tonumber(ARGV[1]) then return 0 end
redis.call('hset', KEYS[1], 'fence', ARGV[1], 'state', ARGV[2])
if ARGV[3] ~= '' then redis.call('set', KEYS[2], ARGV[3]) end
return 1
"""


class SourceState(BaseModel):
    """When a source ran and is due again (Unix seconds), and how it has been failing."""

    model_config = ConfigDict(frozen=True)

    last_run_at: float | None = None
    last_success_at: float | None = None
    consecutive_failures: int = Field(default=0, ge=0)
    next_due_at: float = 0.0
    last_error: str | None = None


# Pure decisions: when a source is due, and its state after a poll.


def interval_for(config: SourceConfig, tiers: Mapping[Tier, float] = DEFAULT_TIERS) -> float:
    return config.interval_s if config.interval_s is not None else tiers[config.tier]


def jittered(delay_s: float, jitter: float, draw: float) -> float:
    """`delay_s` moved by up to ± `jitter` of itself; `draw` is uniform in [-1, 1]."""
    return delay_s * (1 + jitter * draw)


def failure_delay(interval_s: float, failures: int, cap_s: float) -> float:
    """interval, 2×, 4×, … after 1, 2, 3 … consecutive failures; never above the cap (nor
    below the interval: a failing source is never polled more often than a healthy one)."""
    growth = 2.0 ** min(failures - 1, 40)
    return min(max(cap_s, interval_s), interval_s * growth)


def is_due(state: SourceState, now: float) -> bool:
    return now >= state.next_due_at


def after_success(
    state: SourceState, started: float, finished: float, delay_s: float
) -> SourceState:
    return state.model_copy(
        update={
            "last_run_at": started,
            "last_success_at": finished,
            "consecutive_failures": 0,
            "next_due_at": finished + delay_s,
            "last_error": None,
        }
    )


def after_failure(
    state: SourceState, started: float, finished: float, delay_s: float, error: str
) -> SourceState:
    return state.model_copy(
        update={
            "last_run_at": started,
            "consecutive_failures": state.consecutive_failures + 1,
            "next_due_at": finished + delay_s,
            "last_error": error[:MAX_ERROR_CHARS],
        }
    )


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class SourceStore:
    def __init__(self, redis: Redis, prefix: str = "") -> None:
        self._redis = redis
        self._prefix = prefix
        self._save = redis.register_script(_SAVE)

    def lock_key(self, name: str) -> str:
        return f"{self._prefix}sift:source-lock:{name}"

    def state_key(self, name: str) -> str:
        return f"{self._prefix}sift:source-state:{name}"

    def cursor_key(self, name: str) -> str:
        return f"{self._prefix}sift:source-cursor:{name}"

    async def states(self, names: list[str]) -> dict[str, SourceState]:
        """Every named source's state in one round trip (a fresh state for one never run)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(self.state_key(name), "state")
            raw = await pipe.execute()
        return {
            name: SourceState.model_validate_json(text) if (text := _text(value)) else SourceState()
            for name, value in zip(names, raw, strict=True)
        }

    async def state(self, name: str) -> SourceState:
        return (await self.states([name]))[name]

    async def cursor(self, name: str) -> Cursor:
        text = _text(await self._redis.get(self.cursor_key(name)))
        return Cursor.model_validate_json(text) if text else Cursor()

    async def save(
        self, name: str, state: SourceState, *, fence: int, cursor: Cursor | None = None
    ) -> bool:
        """Write the state (and the cursor, when given); False when a newer fence is stored."""
        saved = await self._save(
            keys=[self.state_key(name), self.cursor_key(name)],
            args=[fence, state.model_dump_json(), cursor.model_dump_json() if cursor else ""],
        )
        return bool(saved)
