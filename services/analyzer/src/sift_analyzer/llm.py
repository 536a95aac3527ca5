"""One structured LLM answer through the gateway: schema-constrained, validated, repaired once.

An answer that is not valid JSON or not valid under the schema gets exactly one repair turn;
if that fails too, `OutputFailedError` carries the reason, and the caller marks the work
failed. A default or guessed result is never made up.
"""

import logging
import time
from dataclasses import dataclass
from typing import Any

from sift_analyzer.core import (
    Check,
    InvalidOutputError,
    Messages,
    repair_messages,
    validate_output,
)
from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.profiles import PromptProfile
from sift_common.errors import InvalidMessageError, SiftError
from sift_common.gateway_client import ChatResult, GatewayClient, GatewayRequestError, Priority

logger = logging.getLogger(__name__)


class OutputFailedError(SiftError):
    """The model's output stayed invalid after the repair attempt."""

    def __init__(self, message: str, usage: "Usage | None" = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


@dataclass(frozen=True)
class Usage:
    """What one answer cost: LLM calls (a repair is a second) and tokens as vLLM counted."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def plus(self, result: ChatResult) -> "Usage":
        return Usage(
            self.calls + 1,
            self.prompt_tokens + (result.prompt_tokens or 0),
            self.completion_tokens + (result.completion_tokens or 0),
        )


@dataclass(frozen=True)
class Answer:
    result: dict[str, Any]
    model: str
    repaired: bool
    usage: Usage = Usage()
    profile: str | None = None  # the gateway profile that answered (an A/B arm)


class StructuredLlm:
    def __init__(self, gateway: GatewayClient, metrics: AnalyzerMetrics) -> None:
        self._gateway, self._metrics = gateway, metrics

    async def ask(
        self,
        profile: PromptProfile,
        label: str,
        messages: Messages,
        *,
        priority: Priority,
        request_id: str,
        check: Check | None = None,
        sticky_key: str | None = None,
    ) -> Answer:
        """The answer, valid under the profile's schema and `check`, repaired once if not.
        `sticky_key` (the document, the entity) keeps both turns on one arm of an A/B split."""
        first = await self._call(profile, label, messages, priority, request_id, sticky_key)
        usage = Usage().plus(first)
        try:
            result = validate_output(profile, first.content, first.finish_reason, check)
            return Answer(result, first.model, repaired=False, usage=usage, profile=first.profile)
        except InvalidOutputError as problem:
            logger.warning("invalid model output, asking for a repair: %s", problem)
            repair = repair_messages(messages, first.content, str(problem))
            second = await self._call(
                profile, label, repair, priority, f"{request_id}:repair", sticky_key, "repair"
            )
            usage = usage.plus(second)
            try:
                result = validate_output(profile, second.content, second.finish_reason, check)
                return Answer(
                    result, second.model, repaired=True, usage=usage, profile=second.profile
                )
            except InvalidOutputError as again:
                raise OutputFailedError(
                    f"model output invalid after one repair: first {problem}; then {again}",
                    usage=usage,
                ) from None

    async def _call(
        self,
        profile: PromptProfile,
        label: str,
        messages: Messages,
        priority: Priority,
        request_id: str,
        sticky_key: str | None,
        attempt: str = "first",
    ) -> ChatResult:
        self._metrics.llm_calls.labels(label, attempt).inc()
        started = time.perf_counter()
        try:
            answer = await self._gateway.chat(
                messages,
                model=profile.model,
                max_tokens=profile.max_tokens,
                temperature=profile.temperature,
                json_schema=profile.json_schema,
                schema_name=label,
                priority=priority,
                request_id=request_id,
                sticky_key=sticky_key,
            )
        except GatewayRequestError as exc:  # 4xx: this input can never succeed as it is
            raise InvalidMessageError(f"the gateway refused the request: {exc}") from exc
        finally:
            self._metrics.llm_latency.labels(label).observe(time.perf_counter() - started)
        return answer
