"""Skip-interval: work whose last success is younger than its interval is not redone.

The decision (`should_skip`) is pure. `AnalysisStateRepository` is the PostgreSQL adapter that
keeps the per-work-key state in `analysis_state`; its writes carry a fencing token (from the
lease lock) so a worker whose lease was taken over cannot overwrite a newer worker's result.
Timestamps come from one injectable UTC clock, the same one callers pass to `should_skip`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sift_common.store.models import AnalysisState

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WorkState:
    work_key: str
    last_attempt_at: datetime
    last_success_at: datetime | None
    fencing_token: int
    result_ref: str | None
    attempts: int = 0
    last_error: str | None = None


def should_skip(state: WorkState | None, interval: timedelta, now: datetime) -> bool:
    """True when the last success is younger than `interval` (strictly) at `now`.

    A failure after a success does not reset this: the stored result stays valid to re-use.
    An interval of zero or less disables skipping.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if state is None or state.last_success_at is None or interval <= timedelta(0):
        return False
    return now - state.last_success_at < interval


def autocommit_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for `AnalysisStateRepository` on `engine`'s pool, in autocommit: each of its
    reads and upserts is one statement, atomic on its own (the fencing check is in the
    upsert's WHERE), so BEGIN and COMMIT/ROLLBACK around it would only add two round trips per
    call (a fifth of the analyzer's CPU in the pipeline bench's profile)."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


class AnalysisStateRepository:
    """`analysis_state` rows, read by primary key and written with a fencing check."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], clock: Clock = utc_now
    ) -> None:
        self._sessions = session_factory
        self._clock = clock

    async def get(self, work_key: str) -> WorkState | None:
        async with self._sessions() as session:
            row = await session.get(AnalysisState, work_key)
            if row is None:
                return None
            return WorkState(
                work_key=row.work_key,
                last_attempt_at=row.last_attempt_at,
                last_success_at=row.last_success_at,
                fencing_token=row.fencing_token,
                result_ref=row.result_ref,
                attempts=row.attempts,
                last_error=row.last_error,
            )

    async def record_attempt(self, work_key: str, fencing_token: int) -> None:
        """Count an attempt; the stored token only ever rises, so older holders get fenced."""
        now = self._clock()
        stmt = insert(AnalysisState).values(
            work_key=work_key, last_attempt_at=now, fencing_token=fencing_token, attempts=1
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[AnalysisState.work_key],
            set_={
                "last_attempt_at": now,
                "attempts": AnalysisState.attempts + 1,
                "fencing_token": func.greatest(
                    AnalysisState.fencing_token, stmt.excluded.fencing_token
                ),
            },
        )
        await self._execute(stmt)

    async def record_success(self, work_key: str, fencing_token: int, result_ref: str) -> bool:
        """Store the result reference; False (nothing written) if a newer token is stored."""
        now = self._clock()
        return await self._fenced_upsert(
            work_key,
            fencing_token,
            {"last_success_at": now, "result_ref": result_ref, "last_error": None},
        )

    async def record_failure(self, work_key: str, fencing_token: int, error: str) -> bool:
        """Store the error, keeping the last good result; False if a newer token is stored."""
        return await self._fenced_upsert(work_key, fencing_token, {"last_error": error})

    async def _fenced_upsert(self, work_key: str, token: int, values: dict[str, object]) -> bool:
        # A first write without a recorded attempt still counts as one attempt.
        stmt = insert(AnalysisState).values(
            work_key=work_key,
            last_attempt_at=self._clock(),
            fencing_token=token,
            attempts=1,
            **values,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[AnalysisState.work_key],
            set_={"fencing_token": stmt.excluded.fencing_token, **values},
            # The fencing check and the write are one statement: no race between them.
            where=AnalysisState.fencing_token <= stmt.excluded.fencing_token,
        )
        return await self._execute(stmt)

    async def _execute(self, stmt: Insert) -> bool:
        """Run an upsert in its own transaction; True if it inserted or updated a row."""
        async with self._sessions.begin() as session:
            written = await session.execute(stmt.returning(AnalysisState.work_key))
            return written.first() is not None
