"""Embeddings through the gateway, with the served model's name recorded for every vector.

The gateway's alias (`embed`) may be switched to another model at runtime; the name the answer
carries is what each row stores, so vectors of two models never share a search space.
"""

from sift_common.gateway_client import GatewayClient, Priority

MAX_INPUT_TOKENS = 256  # MiniLM's context; a guard behind the chunking, never the plan


class Embedder:
    def __init__(self, client: GatewayClient, model: str, recorded_name: str | None) -> None:
        self._client, self._model, self._recorded = client, model, recorded_name
        self.last_model: str | None = recorded_name  # what the latest answer said it was

    async def embed(
        self, texts: list[str], *, priority: Priority = "normal"
    ) -> tuple[str, list[list[float]]]:
        """(model name to record, one vector per text), in one gateway request."""
        answer = await self._client.embeddings(
            texts, model=self._model, priority=priority, truncate_prompt_tokens=MAX_INPUT_TOKENS
        )
        self.last_model = self._recorded or answer.model
        return self.last_model, answer.vectors
