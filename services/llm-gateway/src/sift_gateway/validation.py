"""Checking OpenAI-style request bodies cheaply, with errors that name the field.

`RequestLimits` caps what one request may ask of the upstreams (its messages, `n`, its output
tokens); the body's size is capped before it is read (`client_max_size`, answered 413)."""

from dataclasses import dataclass
from typing import Any

import orjson

from sift_gateway.admission import PriorityClass
from sift_gateway.errors import invalid_request

PRIORITY_HEADER = "x-sift-priority"


@dataclass(frozen=True)
class RequestLimits:
    """The most one chat request may ask for (`SIFT_GATEWAY_MAX_*`)."""

    max_messages: int = 1024
    max_n: int = 8
    max_tokens: int = 131072  # above a context, a request is clamped to fit (context.py)


def parse_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise invalid_request("request body is empty; expected a JSON object")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise invalid_request("request body must be a JSON object")
    return payload


def require_model(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("'model' is required and must be a non-empty string", "model")
    return model


def require_messages(
    payload: dict[str, Any], max_messages: int = RequestLimits.max_messages
) -> list[dict[str, Any]]:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty array", "messages")
    if len(messages) > max_messages:
        raise invalid_request(f"'messages' may hold at most {max_messages} messages", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid_request(
                f"messages[{index}] must be an object with a string 'role'", f"messages[{index}]"
            )
    return messages


def optional_max_tokens(
    payload: dict[str, Any], cap: int = RequestLimits.max_tokens
) -> tuple[str, int | None]:
    """The output cap and the field it came in (`max_completion_tokens` is the newer name)."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = payload.get(field)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise invalid_request(f"'{field}' must be a positive integer", field)
        if value > cap:
            raise invalid_request(f"'{field}' may be at most {cap}", field)
        return field, value
    return "max_tokens", None


def optional_n(payload: dict[str, Any], cap: int = RequestLimits.max_n) -> None:
    """`n` (choices per request) is passed on as it is, when it is 1..cap."""
    value = payload.get("n")
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= cap:
        raise invalid_request(f"'n' must be an integer from 1 to {cap}", "n")


def optional_stream(payload: dict[str, Any]) -> bool:
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid_request("'stream' must be a boolean", "stream")
    return stream


def require_embedding_input(payload: dict[str, Any]) -> int:
    """Validate `input`; returns the number of inputs (a string or token list counts as one)."""
    value = payload.get("input")
    if isinstance(value, str) and value:
        return 1
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return len(value)
        if all(isinstance(item, int) for item in value):
            return 1
        if all(isinstance(item, list) and item for item in value):
            return len(value)
    raise invalid_request(
        "'input' must be a non-empty string, array of strings, or array of token arrays", "input"
    )


def priority_class(headers: Any) -> PriorityClass:
    value = headers.get(PRIORITY_HEADER)
    if value is None:
        return PriorityClass.NORMAL
    try:
        return PriorityClass[value.strip().upper()]
    except KeyError:
        names = ", ".join(member.name.lower() for member in PriorityClass)
        raise invalid_request(
            f"header {PRIORITY_HEADER} must be one of: {names}", PRIORITY_HEADER
        ) from None
