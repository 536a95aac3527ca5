"""Context safety: make prompt + output fit the model's context instead of letting vLLM refuse.

vLLM rejects a request whose `max_tokens` overflows the context. The gateway clamps
`max_tokens` to what is left after the prompt, and refuses (400, sizes named) a prompt that
leaves no room. Counting tokens exactly costs a `/tokenize` round trip, so it is done only when
a cheap upper bound says the request might not fit: a BPE token is at least one byte of UTF-8,
so the prompt's byte length bounds its token count from above.
"""

from dataclasses import dataclass
from typing import Any

# Chat templates add role markers around each message; a generous allowance per message.
TEMPLATE_TOKENS_PER_MESSAGE = 16


class ContextOverflowError(ValueError):
    """The prompt alone leaves no room for output in the model's context."""

    def __init__(self, prompt_tokens: int, max_model_len: int) -> None:
        super().__init__(
            f"prompt is {prompt_tokens} tokens but the model's context is {max_model_len} tokens; "
            "shorten the messages"
        )
        self.prompt_tokens = prompt_tokens
        self.max_model_len = max_model_len


def prompt_bytes_upper_bound(messages: list[dict[str, Any]]) -> int:
    """An upper bound of the prompt's token count from its text, without tokenizing."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.encode("utf-8"))
        elif isinstance(content, list):
            total += sum(
                len(str(part.get("text", "")).encode("utf-8"))
                for part in content
                if isinstance(part, dict)
            )
        total += TEMPLATE_TOKENS_PER_MESSAGE
    return total


def fits_without_counting(upper_bound: int, max_tokens: int | None, max_model_len: int) -> bool:
    """True when even the upper bound leaves room for the requested output."""
    return upper_bound + (max_tokens or 1) <= max_model_len


@dataclass(frozen=True)
class Clamp:
    max_tokens: int
    clamped: bool


def clamp_max_tokens(prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> Clamp:
    """`max_tokens` reduced so that prompt + output fit; raises if nothing fits."""
    room = max_model_len - prompt_tokens
    if room < 1:
        raise ContextOverflowError(prompt_tokens, max_model_len)
    if max_tokens is None or max_tokens > room:
        return Clamp(room, clamped=max_tokens is not None)
    return Clamp(max_tokens, clamped=False)
