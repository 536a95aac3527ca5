"""Request validation: every bad field is a 400 in OpenAI's shape that names the parameter."""

from typing import Any

import pytest

from sift_gateway.admission import PriorityClass
from sift_gateway.errors import ApiError
from sift_gateway.validation import (
    optional_max_tokens,
    optional_n,
    optional_stream,
    parse_object,
    priority_class,
    require_embedding_input,
    require_messages,
    require_model,
)


def assert_bad_request(raised: pytest.ExceptionInfo[ApiError], param: str | None) -> None:
    error = raised.value
    assert error.status == 400
    assert error.error_type == "invalid_request_error"
    assert error.param == param
    assert error.body()["error"]["param"] == param
    if param is not None:
        assert param.split("[")[0] in error.message or param in error.message


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"text"', b"null"])
def test_body_must_be_a_json_object(raw: bytes) -> None:
    with pytest.raises(ApiError) as raised:
        parse_object(raw)
    assert_bad_request(raised, None)


def test_a_json_object_parses() -> None:
    assert parse_object(b'{"model": "chat"}') == {"model": "chat"}


@pytest.mark.parametrize("payload", [{}, {"model": ""}, {"model": 3}, {"model": None}])
def test_model_is_required(payload: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as raised:
        require_model(payload)
    assert_bad_request(raised, "model")


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "user"}, {"content": "x"}]}, "messages[1]"),
        ({"messages": [{"role": "user"}, {"role": 7}]}, "messages[1]"),
    ],
)
def test_messages_must_be_objects_with_a_role(payload: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as raised:
        require_messages(payload)
    assert_bad_request(raised, param)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -3}, "max_tokens"),
        ({"max_tokens": "10"}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_completion_tokens": 0, "max_tokens": 10}, "max_completion_tokens"),
    ],
)
def test_max_tokens_must_be_a_positive_integer(payload: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as raised:
        optional_max_tokens(payload)
    assert_bad_request(raised, param)


def test_max_tokens_field_and_value() -> None:
    assert optional_max_tokens({}) == ("max_tokens", None)
    assert optional_max_tokens({"max_tokens": 5}) == ("max_tokens", 5)
    assert optional_max_tokens({"max_completion_tokens": 7, "max_tokens": 5}) == (
        "max_completion_tokens",
        7,
    )


@pytest.mark.parametrize("value", ["true", 1, None])
def test_stream_must_be_a_boolean(value: object) -> None:
    with pytest.raises(ApiError) as raised:
        optional_stream({"stream": value})
    assert_bad_request(raised, "stream")
    assert optional_stream({}) is False
    assert optional_stream({"stream": True}) is True


@pytest.mark.parametrize("value", [None, "", [], [1, "a"], [[]], {"text": "x"}, 5])
def test_embedding_input_shapes(value: object) -> None:
    with pytest.raises(ApiError) as raised:
        require_embedding_input({"input": value})
    assert_bad_request(raised, "input")


def test_embedding_input_counts() -> None:
    assert require_embedding_input({"input": "one"}) == 1
    assert require_embedding_input({"input": ["a", "b", "c"]}) == 3
    assert require_embedding_input({"input": [1, 2, 3]}) == 1
    assert require_embedding_input({"input": [[1, 2], [3]]}) == 2


def test_priority_header() -> None:
    assert priority_class({}) is PriorityClass.NORMAL
    assert priority_class({"x-sift-priority": " Interactive "}) is PriorityClass.INTERACTIVE
    assert priority_class({"x-sift-priority": "backfill"}) is PriorityClass.BACKFILL
    with pytest.raises(ApiError) as raised:
        priority_class({"x-sift-priority": "urgent"})
    assert_bad_request(raised, "x-sift-priority")
    assert "interactive, normal, backfill" in raised.value.message


def test_limits_name_the_param_and_the_limit_itself_passes() -> None:
    five = [{"role": "user", "content": "hi"}] * 5
    with pytest.raises(ApiError) as raised:
        require_messages({"messages": five}, max_messages=4)
    assert_bad_request(raised, "messages")
    assert require_messages({"messages": five}, max_messages=5) == five
    for field in ("max_tokens", "max_completion_tokens"):
        with pytest.raises(ApiError) as raised:
            optional_max_tokens({field: 101}, cap=100)
        assert_bad_request(raised, field)
        assert optional_max_tokens({field: 100}, cap=100) == (field, 100)
    for n in (0, 9, "2", True, 1.5):
        with pytest.raises(ApiError) as raised:
            optional_n({"n": n}, cap=8)
        assert_bad_request(raised, "n")
    optional_n({"n": 8}, cap=8)
    optional_n({}, cap=8)
