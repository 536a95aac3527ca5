"""Embeddings through the gateway, with the served model's name recorded for every vector.

The gateway's alias (`embed`) may be switched to another model at runtime; the name the answer
carries is what each row stores, so vectors of two models never share a search space.
"""

from sift_common.gateway_client import GatewayClient, GatewayUnavailableError, Priority

MAX_INPUT_TOKENS = 256  # MiniLM's context; a guard behind the chunking, never the plan


class Embedder:
    def __init__(self, client: GatewayClient, model: str, recorded_name: str | None) -> None:
        self._client, self._model, self._recorded = client, model, recorded_name
        self.last_model: str | None = recorded_name  # what the latest answer said it was

    async def embed(
        self, texts: list[str], *, priority: Priority = "normal"
    ) -> tuple[str, list[list[float]]]:
        """(model name to record, one vector per text), in one gateway request."""
        body = {
            "model": self._model,
            "input": texts,
            "truncate_prompt_tokens": MAX_INPUT_TOKENS,
        }
        answer = await self._client._post("/v1/embeddings", body, priority, None)
        try:
            ordered = sorted(answer["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in ordered]
            served = str(answer["model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayUnavailableError(f"malformed embeddings from the gateway: {exc}") from exc
        if len(vectors) != len(texts):
            raise GatewayUnavailableError(f"asked for {len(texts)} embeddings, got {len(vectors)}")
        self.last_model = self._recorded or served
        return self.last_model, vectors
