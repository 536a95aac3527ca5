"""A safe alias switch: fit check, warm-up, switch, verification, automatic rollback.

1. fit: the target profile against what its engines report (`fit_check`) → refused.
2. warm-up: a real request to every replica of the target — a short chat completion, or an
   embedding whose dimension must equal the store's `EMBEDDING_DIM` → refused.
3. switch: the alias is written (through the database when there is one: every replica
   follows), then one more real request through the alias as a client's is routed (the alias
   resolved by the registry, the replica its least-loaded pick) → on failure the previous
   profile is written back: rolled_back.
Every outcome is recorded (`gateway.alias_switches`) and logged. A request resolves its alias
once, on arrival, so requests in flight keep the profile they started on.

An A/B split (`split`) runs steps 1 and 2 on every arm not serving the alias yet, then writes
the weights: `split`, or `refused`. A switch ends a split; promoting an arm is a safe switch
to it recorded as `promoted`, and its rollback puts the split back.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from sift_common.store.models import EMBEDDING_DIM
from sift_gateway.alias_store import AliasStore, SwitchRecord
from sift_gateway.fit_check import check_fit
from sift_gateway.registry import ProfileRuntime, Registry
from sift_gateway.split import primary_arm
from sift_gateway.upstream import JSON_HEADERS

logger = logging.getLogger(__name__)

VERIFY_PROMPT = [{"role": "user", "content": "Reply with one word: ready."}]
VERIFY_TEXT = "Sift switch verification."


@dataclass
class Switcher:
    registry: Registry
    store: AliasStore
    session: aiohttp.ClientSession
    timeout_s: float = 60.0

    async def switch(
        self,
        alias: str,
        profile: str,
        requested_by: str | None,
        *,
        force: bool = False,
        done: str = "switched",
    ) -> SwitchRecord:
        """Switch `alias` to `profile` safely (`force`: no checks, as PUT /admin/aliases);
        `done` names the outcome when it works (`promoted`: the end of an A/B test)."""
        async with self.store.switching(alias):
            previous = await self.store.current(alias)
            previous_weights = await self.store.current_weights(alias)
            numbers: dict[str, Any] = (
                {} if previous_weights is None else {"ended_split": previous_weights}
            )
            if force:
                await self.store.write(alias, profile, requested_by)
                return await self._done(alias, previous, profile, "switched", "forced: no checks",
                                        numbers, requested_by)  # fmt: skip
            target = self.registry.profiles[profile]
            problem = await self._before(target, numbers)
            if problem is not None:
                return await self._done(
                    alias, previous, profile, "refused", problem, numbers, requested_by
                )
            await self.store.write(alias, profile, requested_by)
            after = await self._through_alias(alias, profile)
            numbers["after_switch"] = after
            if after["ok"]:
                return await self._done(alias, previous, profile, done, None, numbers, requested_by)
            rollback_by = f"rollback of {requested_by or '-'}"
            if previous_weights is not None:
                await self.store.write_split(alias, previous_weights, rollback_by)
            elif previous is not None:
                await self.store.write(alias, previous, rollback_by)
            reason = f"verification through the alias failed: {after['detail']}"
            return await self._done(
                alias, previous, profile, "rolled_back", reason, numbers, requested_by
            )

    async def split(
        self, alias: str, weights: dict[str, int], requested_by: str | None
    ) -> SwitchRecord:
        """Split `alias` by `weights`; every arm not serving it yet is checked and warmed up
        first. Recorded `to` its heaviest arm, with the weights in the numbers."""
        async with self.store.switching(alias):
            previous = await self.store.current(alias)
            serving = {previous, *(await self.store.current_weights(alias) or {})}
            numbers: dict[str, Any] = {"weights": weights, "checked": {}}
            heaviest = primary_arm(weights)
            for arm in sorted(set(weights) - serving):
                checked: dict[str, Any] = {}
                numbers["checked"][arm] = checked
                problem = await self._before(self.registry.profiles[arm], checked)
                if problem is not None:
                    reason = f"arm {arm}: {problem}"
                    return await self._done(alias, previous, heaviest, "refused", reason,
                                            numbers, requested_by)  # fmt: skip
            await self.store.write_split(alias, weights, requested_by)
            return await self._done(alias, previous, heaviest, "split", None, numbers, requested_by)

    async def _before(self, target: ProfileRuntime, numbers: dict[str, Any]) -> str | None:
        """Fit check and warm-up; the reason to refuse, or None."""
        try:
            async with asyncio.timeout(self.timeout_s):
                fit = await check_fit(self.session, target)
        except TimeoutError:
            return f"fit check took longer than {self.timeout_s:g} s"
        numbers["fit"] = fit.numbers
        if not fit.fits:
            return "does not fit: " + "; ".join(fit.problems)
        warm = await asyncio.gather(*(self._verify(target, r.url) for r in target.replicas))
        numbers["warm_up"] = warm
        failed = [f"{w['url']}: {w['detail']}" for w in warm if not w["ok"]]
        return None if not failed else "warm-up failed: " + "; ".join(failed)

    async def _through_alias(self, alias: str, profile: str) -> dict[str, Any]:
        runtime = self.registry.resolve(alias)
        if runtime is None or runtime.name != profile:
            name = None if runtime is None else runtime.name
            return {"ok": False, "detail": f"the alias resolves to {name!r}"}
        replica = runtime.pick(time.monotonic()) or runtime.replicas[0]
        return await self._verify(runtime, replica.url)

    async def _verify(self, runtime: ProfileRuntime, url: str) -> dict[str, Any]:
        """One real request to one replica: a completion, or an embedding of the store's size."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                detail = await _request(self.session, runtime, url)
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError, TypeError) as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return {"url": url, "ok": False, "detail": detail, "ms": _ms(started)}
        return {"url": url, "ok": detail is None, "detail": detail, "ms": _ms(started)}

    async def _done(
        self,
        alias: str,
        previous: str | None,
        profile: str,
        outcome: str,
        reason: str | None,
        numbers: dict[str, Any],
        requested_by: str | None,
    ) -> SwitchRecord:
        record = SwitchRecord(alias, previous, profile, outcome, reason, numbers, requested_by)
        await self.store.record(record)
        log = logger.warning if outcome in ("refused", "rolled_back") else logger.info
        log("alias %s: %s -> %s %s%s", alias, previous, profile, outcome,
            f" ({reason})" if reason else "")  # fmt: skip
        return record


async def _request(session: aiohttp.ClientSession, runtime: ProfileRuntime, url: str) -> str | None:
    """What is wrong with the replica's answer, or None."""
    model = runtime.profile.served_model
    if runtime.profile.kind == "chat":
        path = "/v1/chat/completions"
        body: dict[str, Any] = {"model": model, "messages": VERIFY_PROMPT, "max_tokens": 8}
    else:
        path, body = "/v1/embeddings", {"model": model, "input": VERIFY_TEXT}
    async with session.post(url + path, data=orjson.dumps(body), headers=JSON_HEADERS) as response:
        payload = await response.read()
        if response.status != 200:
            return f"{path} answered {response.status}: {payload[:200].decode(errors='replace')}"
    answer = orjson.loads(payload)
    if runtime.profile.kind == "chat":
        message = (answer.get("choices") or [{}])[0].get("message") or {}
        return None if isinstance(message.get("content"), str) else "no completion in the answer"
    vector = (answer.get("data") or [{}])[0].get("embedding")
    dim = len(vector) if isinstance(vector, list) else None
    return (
        None
        if dim == EMBEDDING_DIM
        else f"embedding dimension {dim}, the store needs {EMBEDDING_DIM}"
    )


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
