"""The LLM gateway's OpenAI-compatible surface (FAKE upstreams): model resolution and kinds,
request validation, the official `openai` client, /v1/models, switching an alias through the
admin API, and the overhead header.
"""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import (
    HI,
    RunningGateway,
    StartFake,
    assert_openai_error,
    chat,
    chat_profile,
    client,
    dead_url,
    embed_profile,
    running_gateway,
    stream_chat,
)

pytestmark = pytest.mark.integration


def openai_client(gateway: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)


# --- request validation and model resolution ----------------------------------------------------


@pytest.fixture
async def chat_and_embed(
    tmp_path: Path, fakes: StartFake
) -> AsyncIterator[tuple[RunningGateway, FakeUpstream, FakeUpstream]]:
    chat_fake = await fakes()
    embed_fake = await fakes(model="fake-embed")
    profiles = {"main": chat_profile(chat_fake.url), "vectors": embed_profile(embed_fake.url)}
    aliases = {"chat": "main", "embed": "vectors"}
    async with running_gateway(tmp_path, profiles, aliases) as gw:
        yield gw, chat_fake, embed_fake


async def test_unknown_model_is_404_and_wrong_kind_is_400(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
) -> None:
    gw, _, _ = chat_and_embed
    async with client(gw) as http:
        error = assert_openai_error(
            await chat(http, model="nope"), 404, code="model_not_found", param="model"
        )
        assert "'nope'" in error["message"]
        assert "chat" in error["message"]
        assert "embed" in error["message"]
        assert_openai_error(
            await chat(http, model="embed"), 400, code="wrong_model_kind", param="model"
        )
        response = await http.post("/v1/embeddings", json={"model": "chat", "input": "x"})
        assert_openai_error(response, 400, code="wrong_model_kind", param="model")
        # A profile name and a served model name resolve too.
        assert (await chat(http, model="main")).status_code == 200
        assert (await chat(http, model="fake-chat")).status_code == 200


USER = [{"role": "user", "content": "x"}]
MALFORMED = [
    ("/v1/chat/completions", b"{not json", None),
    ("/v1/chat/completions", b"", None),
    ("/v1/chat/completions", b"[]", None),
    ("/v1/chat/completions", {"messages": USER}, "model"),
    ("/v1/chat/completions", {"model": "chat"}, "messages"),
    ("/v1/chat/completions", {"model": "chat", "messages": [{"content": "x"}]}, "messages[0]"),
    ("/v1/chat/completions", {"model": "chat", "messages": USER, "max_tokens": "9"}, "max_tokens"),
    ("/v1/chat/completions", {"model": "chat", "messages": USER, "stream": "yes"}, "stream"),
    ("/v1/embeddings", {"model": "embed"}, "input"),
    ("/v1/embeddings", {"model": "embed", "input": []}, "input"),
    ("/v1/embeddings", {"input": "x"}, "model"),
]


@pytest.mark.parametrize(("path", "body", "param"), MALFORMED)
async def test_malformed_requests_are_400_naming_the_param(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
    path: str,
    body: bytes | dict[str, Any],
    param: str | None,
) -> None:
    gw, chat_fake, _ = chat_and_embed
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    async with client(gw) as http:
        headers = {"content-type": "application/json"}
        response = await http.post(path, content=raw, headers=headers)
        error = assert_openai_error(response, 400, param=param)
        assert error["type"] == "invalid_request_error"
        if param is not None:
            assert param in error["message"]
        assert chat_fake.chat_requests() == []


async def test_bad_priority_header_is_400(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
) -> None:
    gw, _, _ = chat_and_embed
    async with client(gw) as http:
        response = await chat(http, headers={"x-sift-priority": "urgent"})
        assert_openai_error(response, 400, param="x-sift-priority")


# --- the official openai client, /v1/models ------------------------------------------------------


async def test_openai_client_works_unchanged(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
) -> None:
    gw, chat_fake, embed_fake = chat_and_embed
    async with openai_client(gw) as oai:
        completion = await oai.chat.completions.create(model="chat", messages=HI)
        assert completion.choices[0].message.content == "Hello from the fake upstream."
        assert completion.usage is not None

        stream = await oai.chat.completions.create(model="chat", messages=HI, stream=True)
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
        assert "".join(pieces) == "Hello from the fake upstream."

        vectors = await oai.embeddings.create(model="embed", input=["a", "b"])
        assert [item.index for item in vectors.data] == [0, 1]
        assert vectors.data[0].embedding == pytest.approx([0.1] * 8)
        assert embed_fake.requests[-1]["body"]["model"] == "fake-embed"

        models = await oai.models.list()
        assert {model.id for model in models.data} == {"chat", "embed", "main", "vectors"}
    assert len(chat_fake.chat_requests()) == 2


async def test_openai_client_raises_the_right_exceptions(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes()
    profiles = {"main": chat_profile(fake.url), "gone": chat_profile(dead_url())}
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main"}) as gw,
        openai_client(gw) as oai,
    ):
        with pytest.raises(openai.BadRequestError) as bad:
            await oai.chat.completions.create(model="chat", messages=[])
        assert bad.value.status_code == 400
        assert bad.value.param == "messages"
        with pytest.raises(openai.NotFoundError) as missing:
            await oai.chat.completions.create(model="nope", messages=HI)
        assert missing.value.code == "model_not_found"
        with pytest.raises(openai.InternalServerError) as down:
            await oai.chat.completions.create(model="gone", messages=HI)
        assert down.value.status_code == 503
        assert down.value.response.headers["retry-after"] == "5"


async def test_models_lists_aliases_and_profiles(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
) -> None:
    gw, _, _ = chat_and_embed
    async with client(gw) as http:
        response = await http.get("/v1/models")
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "list"
        assert [m["id"] for m in body["data"]] == ["chat", "embed", "main", "vectors"]
        assert all(m["object"] == "model" for m in body["data"])


# --- admin, overhead header --------------------------------------------------------------------


async def test_admin_switches_an_alias_at_runtime(tmp_path: Path, fakes: StartFake) -> None:
    first = await fakes()
    other = await fakes(model="fake-other")
    vectors = await fakes(model="fake-embed")
    profiles = {
        "main": chat_profile(first.url),
        "other": chat_profile(other.url, served_model="fake-other"),
        "vectors": embed_profile(vectors.url),
    }
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main", "embed": "vectors"}) as gw,
        client(gw) as http,
    ):
        assert (await chat(http)).json()["model"] == "fake-chat"
        switched = await http.put("/admin/aliases/chat", json={"profile": "other"})
        assert switched.status_code == 200
        assert switched.json() == {"alias": "chat", "profile": "other"}
        response = await chat(http)
        assert response.json()["model"] == "fake-other"
        assert len(first.chat_requests()) == 1
        assert other.chat_requests()[0]["body"]["model"] == "fake-other"

        wrong_kind = await http.put("/admin/aliases/chat", json={"profile": "vectors"})
        assert_openai_error(wrong_kind, 409, param="profile")
        unknown = await http.put("/admin/aliases/chat", json={"profile": "nope"})
        assert_openai_error(unknown, 400, param="profile")
        not_json = await http.put("/admin/aliases/chat", content=b"other")
        assert_openai_error(not_json, 400)

        described = (await http.get("/admin/profiles")).json()
        assert described["aliases"] == {"chat": "other", "embed": "vectors"}
        assert set(described["profiles"]) == {"main", "other", "vectors"}
        assert (await chat(http)).json()["model"] == "fake-other"


async def test_overhead_header_is_present_and_small(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes()
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        for _ in range(3):
            response = await chat(http, headers={"x-request-id": "req-123"})
            assert response.status_code == 200
            assert response.headers["x-request-id"] == "req-123"
            assert 0 <= float(response.headers["x-sift-overhead-ms"]) < 100
        response, _ = await stream_chat(http)
        assert 0 <= float(response.headers["x-sift-overhead-ms"]) < 100
