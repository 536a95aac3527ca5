"""Typed async client for the LLM gateway, used by the analyzer and the archiver.

Failures are classified for the consumers' retry policy: the gateway or its upstreams being
unavailable or slow is a `GatewayUnavailableError` (transient → retry ladder); at capacity
(its queue full, or an upstream's 429: a 429, or a 503 with code `overloaded`) it is a
`GatewayOverloadedError`, retried after its `Retry-After` without spending the retry budget;
a request the gateway refuses (4xx) is a `GatewayRequestError` (not transient: retrying the same
request cannot help). A refused key (401, or 403: a scope or priority the key lacks) is a
`GatewayAuthError`: the service's `SIFT_GATEWAY_API_KEY` is wrong, not the work, so the work
waits on the retry ladder while an operator fixes the key instead of being dead-lettered.

`sticky_key` (the document id, the entity key) keeps a caller's requests for one thing on one
arm of an alias under an A/B split; the profile that answered comes back as `profile`.
"""

from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote, unquote

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from sift_common.errors import OverloadedError, SiftError, TransientError

Priority = Literal["interactive", "normal", "backfill"]
PRIORITY_HEADER = "x-sift-priority"
STICKY_HEADER = "x-sift-sticky-key"
PROFILE_HEADER = "x-sift-profile"
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class GatewayUnavailableError(TransientError):
    """The gateway could not answer now (down, overloaded, upstream failing or too slow)."""


class GatewayOverloadedError(GatewayUnavailableError, OverloadedError):
    """The gateway is at capacity and said when to come back (`retry_after_s`)."""


class GatewayAuthError(GatewayUnavailableError):
    """The gateway refused this service's key (401) or what it asked for with it (403)."""

    def __init__(self, status: int, message: str, code: str | None) -> None:
        super().__init__(f"the gateway refused SIFT_GATEWAY_API_KEY ({status} {code}): {message}")
        self.status = status
        self.code = code


class GatewayRequestError(SiftError):
    """The gateway refused the request (4xx); `status`, `code` and `param` say why."""

    def __init__(self, status: int, message: str, code: str | None, param: str | None) -> None:
        super().__init__(f"{status} {code or ''}: {message}".strip())
        self.status = status
        self.code = code
        self.param = param


class ChatResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    model: str
    content: str
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    profile: str | None = None  # the gateway profile that answered (an A/B arm)


class EmbeddingsResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    vectors: list[list[float]]


def chat_body(
    messages: list[dict[str, str]],
    model: str,
    max_tokens: int | None = None,
    temperature: float | None = None,
    json_schema: dict[str, Any] | None = None,
    schema_name: str = "output",
) -> dict[str, Any]:
    """The OpenAI chat request body `GatewayClient.chat` sends (the pipeline bench sends the
    same body straight to vLLM, to compare the pipeline with the engine's own pace)."""
    body: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    if json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": json_schema, "strict": True},
        }
    return body


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
        api_key: SecretStr | str | None = None,
    ) -> None:
        """`api_key` (`SIFT_GATEWAY_API_KEY`) is sent as `Authorization: Bearer`."""
        secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {secret}"} if secret else None,
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        model: str = "chat",
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
        schema_name: str = "output",
        priority: Priority = "normal",
        request_id: str | None = None,
        sticky_key: str | None = None,
    ) -> ChatResult:
        """One chat completion; with `json_schema` the output is constrained to that schema."""
        body = chat_body(messages, model, max_tokens, temperature, json_schema, schema_name)
        response = await self._post("/v1/chat/completions", body, priority, request_id, sticky_key)
        answer = response.json()
        profile = response.headers.get(PROFILE_HEADER)
        try:
            choice = answer["choices"][0]
            usage = answer.get("usage") or {}
            return ChatResult(
                id=answer["id"],
                model=answer["model"],
                content=choice["message"]["content"] or "",
                finish_reason=choice.get("finish_reason"),
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
                profile=None if profile is None else unquote(profile),
            )
        except (KeyError, IndexError, TypeError, ValidationError) as exc:
            raise GatewayUnavailableError(
                f"malformed chat completion from the gateway: {exc}"
            ) from exc

    async def embed(
        self,
        texts: list[str],
        *,
        model: str = "embed",
        priority: Priority = "normal",
        request_id: str | None = None,
        truncate_prompt_tokens: int | None = None,
        sticky_key: str | None = None,
    ) -> list[list[float]]:
        """Embeddings of `texts`, in order, in one request."""
        answer = await self.embeddings(
            texts,
            model=model,
            priority=priority,
            request_id=request_id,
            truncate_prompt_tokens=truncate_prompt_tokens,
            sticky_key=sticky_key,
        )
        return answer.vectors

    async def embeddings(
        self,
        texts: list[str],
        *,
        model: str = "embed",
        priority: Priority = "normal",
        request_id: str | None = None,
        truncate_prompt_tokens: int | None = None,
        sticky_key: str | None = None,
    ) -> EmbeddingsResult:
        """Like `embed`, plus the name of the model that served them (an alias resolves to it)."""
        if not texts:
            return EmbeddingsResult(model=model, vectors=[])
        body: dict[str, Any] = {"model": model, "input": texts}
        if truncate_prompt_tokens is not None:
            body["truncate_prompt_tokens"] = truncate_prompt_tokens
        answer = (await self._post("/v1/embeddings", body, priority, request_id, sticky_key)).json()
        try:
            ordered = sorted(answer["data"], key=lambda item: item["index"])
            vectors = [list(map(float, item["embedding"])) for item in ordered]
            served = str(answer["model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayUnavailableError(f"malformed embeddings from the gateway: {exc}") from exc
        if len(vectors) != len(texts):
            raise GatewayUnavailableError(f"asked for {len(texts)} embeddings, got {len(vectors)}")
        return EmbeddingsResult(model=served, vectors=vectors)

    async def models(self) -> list[str]:
        response = await self._send(self._http.build_request("GET", "/v1/models"))
        return [item["id"] for item in response.json()["data"]]

    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        priority: Priority,
        request_id: str | None,
        sticky_key: str | None,
    ) -> httpx.Response:
        headers: dict[str, str] = {PRIORITY_HEADER: priority}
        # HTTP headers are ASCII: entity keys (Korean names, say) are percent-encoded.
        if request_id is not None:
            headers["x-request-id"] = quote(request_id, safe=":/-_.")
        if sticky_key is not None:
            headers[STICKY_HEADER] = quote(sticky_key, safe=":/-_.")
        request = self._http.build_request("POST", path, json=body, headers=headers)
        return await self._send(request)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:  # connect errors, timeouts, broken connections
            raise GatewayUnavailableError(f"gateway unreachable: {exc!r}") from exc
        if response.status_code == 200:
            return response
        error = _error_of(response)
        message = str(error.get("message") or response.text[:500])
        if response.status_code == 429 or error.get("code") == "overloaded":
            raise GatewayOverloadedError(
                f"gateway at capacity ({response.status_code}): {message}",
                _retry_after_s(response),
            )
        if response.status_code in TRANSIENT_STATUS:
            raise GatewayUnavailableError(f"gateway answered {response.status_code}: {message}")
        if response.status_code in (401, 403):
            raise GatewayAuthError(response.status_code, message, error.get("code"))
        raise GatewayRequestError(
            response.status_code, message, error.get("code"), error.get("param")
        )


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _retry_after_s(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None  # absent, or an HTTP date (the gateway sends seconds)
