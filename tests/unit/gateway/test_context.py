"""Context safety: the cheap upper bound, clamping max_tokens, refusing what cannot fit."""

import pytest

from sift_gateway.context import (
    TEMPLATE_TOKENS_PER_MESSAGE,
    ContextOverflowError,
    clamp_max_tokens,
    fits_without_counting,
    prompt_bytes_upper_bound,
)


def test_upper_bound_counts_utf8_bytes_plus_template_allowance() -> None:
    messages = [
        {"role": "system", "content": "abc"},
        {"role": "user", "content": "é€"},  # 2 + 3 bytes
    ]
    assert prompt_bytes_upper_bound(messages) == 3 + 5 + 2 * TEMPLATE_TOKENS_PER_MESSAGE


def test_upper_bound_reads_content_parts_and_tolerates_missing_content() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url"}]},
        {"role": "assistant", "tool_calls": []},
    ]
    assert prompt_bytes_upper_bound(messages) == 5 + 2 * TEMPLATE_TOKENS_PER_MESSAGE


def test_fits_without_counting() -> None:
    assert fits_without_counting(100, 50, 150)
    assert not fits_without_counting(100, 51, 150)
    assert fits_without_counting(149, None, 150)  # no max_tokens: one token of room suffices
    assert not fits_without_counting(150, None, 150)


def test_clamp_reduces_max_tokens_to_the_room_left() -> None:
    clamp = clamp_max_tokens(prompt_tokens=1000, max_tokens=4000, max_model_len=2048)
    assert clamp.max_tokens == 1048
    assert clamp.clamped


def test_clamp_keeps_a_max_tokens_that_fits() -> None:
    clamp = clamp_max_tokens(prompt_tokens=1000, max_tokens=100, max_model_len=2048)
    assert (clamp.max_tokens, clamp.clamped) == (100, False)
    exact = clamp_max_tokens(prompt_tokens=1000, max_tokens=1048, max_model_len=2048)
    assert (exact.max_tokens, exact.clamped) == (1048, False)


def test_clamp_fills_in_a_missing_max_tokens_without_counting_it_as_clamped() -> None:
    clamp = clamp_max_tokens(prompt_tokens=2000, max_tokens=None, max_model_len=2048)
    assert (clamp.max_tokens, clamp.clamped) == (48, False)


@pytest.mark.parametrize("prompt_tokens", [2048, 5000])
def test_overflow_names_both_sizes(prompt_tokens: int) -> None:
    with pytest.raises(ContextOverflowError) as raised:
        clamp_max_tokens(prompt_tokens=prompt_tokens, max_tokens=10, max_model_len=2048)
    assert str(prompt_tokens) in str(raised.value)
    assert "2048" in str(raised.value)
    assert (raised.value.prompt_tokens, raised.value.max_model_len) == (prompt_tokens, 2048)
