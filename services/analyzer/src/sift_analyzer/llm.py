"""One structured LLM answer through the gateway: schema-constrained, validated, repaired once.

An answer that is not valid JSON or not valid under the schema gets exactly one repair turn;
if that fails too, `OutputFailedError` carries the reason, and the caller marks the work
failed. A default or guessed result is never made up.
"""

import logging
import time
from dataclasses import dataclass
from typing import Any

from sift_analyzer.core import InvalidOutputError, Messages, repair_messages, validate_output
from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.profiles import PromptProfile
from sift_common.errors import InvalidMessageError, SiftError
from sift_common.gateway_client import GatewayClient, GatewayRequestError, Priority

logger = logging.getLogger(__name__)


class OutputFailedError(SiftError):
    """The model's output stayed invalid after the repair attempt."""


@dataclass(frozen=True)
class Answer:
    result: dict[str, Any]
    model: str
    repaired: bool


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
    ) -> Answer:
        content, finish, model = await self._call(profile, label, messages, priority, request_id)
        try:
            return Answer(validate_output(profile, content, finish), model, repaired=False)
        except InvalidOutputError as first:
            logger.warning("invalid model output, asking for a repair: %s", first)
            repair = repair_messages(messages, content, str(first))
            content, finish, model = await self._call(
                profile, label, repair, priority, f"{request_id}:repair", attempt="repair"
            )
            try:
                return Answer(validate_output(profile, content, finish), model, repaired=True)
            except InvalidOutputError as second:
                raise OutputFailedError(
                    f"model output invalid after one repair: first {first}; then {second}"
                ) from None

    async def _call(
        self,
        profile: PromptProfile,
        label: str,
        messages: Messages,
        priority: Priority,
        request_id: str,
        attempt: str = "first",
    ) -> tuple[str, str | None, str]:
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
            )
        except GatewayRequestError as exc:  # 4xx: this input can never succeed as it is
            raise InvalidMessageError(f"the gateway refused the request: {exc}") from exc
        finally:
            self._metrics.llm_latency.labels(label).observe(time.perf_counter() - started)
        return answer.content, answer.finish_reason, answer.model
