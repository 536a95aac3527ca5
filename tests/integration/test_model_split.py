"""Starting and ending an A/B split (FAKE upstreams; the in-process alias store, as the checks
are the gateway's own): bad weights, unknown profiles, another kind and a missing alias are
refused naming the field; an arm that does not fit refuses the split; `sift model split` and
`sift model promote` print the outcome and exit 0 done, 1 refused, 2 request failed."""

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from sift_archiver.cli import app as sift
from tests.integration.test_model_switch import BIG_MODEL
from tests.support.gateway import (
    RunningGateway,
    StartFake,
    assert_openai_error,
    chat_profile,
    client,
    embed_profile,
    running_gateway,
)

pytestmark = pytest.mark.integration

ALIASES = {"chat": "arm-a", "embed": "vectors"}


async def profiles(fakes: StartFake) -> dict[str, dict[str, Any]]:
    a, b, big = await fakes(model="fake-a"), await fakes(model="fake-b"), await fakes(model="big")
    return {
        "arm-a": chat_profile(a.url, served_model="fake-a"),
        "arm-b": chat_profile(b.url, served_model="fake-b"),
        "big": chat_profile(big.url, served_model="big", hardware=BIG_MODEL),
        "vectors": embed_profile((await fakes(model="fake-embed")).url),
    }


async def split(http: httpx.AsyncClient, body: object, alias: str = "chat") -> httpx.Response:
    return await http.put(f"/admin/aliases/{alias}/split", json=body)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"weights": {"arm-a": 80, "nope": 20}}, 400, "weights.nope"),
        ({"weights": {"arm-a": 80, "arm-b": 30}}, 400, "weights"),
        ({"weights": {"arm-a": 100}}, 400, "weights"),
        ({"weights": {"arm-a": 100, "arm-b": 0}}, 400, "weights.arm-b"),
        ({"weights": {"arm-a": 80.5, "arm-b": 19.5}}, 400, "weights.arm-a"),
        ({"weights": {"arm-a": 50, "vectors": 50}}, 409, "weights.vectors"),
        ({"profile": "arm-b"}, 400, "weights"),
    ],
)
async def test_a_split_no_one_can_mean_is_refused_naming_the_field(
    tmp_path: Path, fakes: StartFake, body: object, status: int, param: str
) -> None:
    async with running_gateway(tmp_path, await profiles(fakes), ALIASES) as gw, client(gw) as http:
        assert_openai_error(await split(http, body), status, param=param)
        assert gw.state.registry.splits == {}


async def test_splits_and_promotions_of_what_is_not_there_are_refused(
    tmp_path: Path, fakes: StartFake
) -> None:
    async with running_gateway(tmp_path, await profiles(fakes), ALIASES) as gw, client(gw) as http:
        good = {"weights": {"arm-a": 80, "arm-b": 20}}
        assert_openai_error(await split(http, good, alias="nope"), 404)
        not_json = await http.put("/admin/aliases/chat/split", content=b"80/20")
        assert_openai_error(not_json, 400)
        promote = await http.post("/admin/aliases/chat/promote", json={"profile": "arm-b"})
        assert_openai_error(promote, 409, code="not_split")
        assert (await split(http, good)).json()["outcome"] == "split"
        not_an_arm = await http.post("/admin/aliases/chat/promote", json={"profile": "big"})
        assert_openai_error(not_an_arm, 400, param="profile")
        assert gw.state.registry.splits == {"chat": {"arm-a": 80, "arm-b": 20}}


async def test_an_arm_that_does_not_fit_refuses_the_split_with_its_numbers(
    tmp_path: Path, fakes: StartFake
) -> None:
    async with running_gateway(tmp_path, await profiles(fakes), ALIASES) as gw, client(gw) as http:
        refused = await split(http, {"weights": {"arm-a": 90, "big": 10}})
        assert refused.status_code == 409
        body = refused.json()
        assert body["outcome"] == "refused"
        assert body["reason"].startswith("arm big: does not fit")
        assert body["numbers"]["checked"]["big"]["fit"]["estimate"]["fits"] is False
        assert gw.state.registry.splits == {}
        history = (await http.get("/admin/alias-switches")).json()["switches"]
        assert [(h["to_profile"], h["outcome"]) for h in history] == [("arm-a", "refused")]


async def sift_model(gateway: RunningGateway, *args: str) -> Result:
    env = {"SIFT_GATEWAY_URL": gateway.url, "SIFT_GATEWAY_ADMIN_KEY": None, "COLUMNS": "200"}
    invoke = CliRunner().invoke
    return await asyncio.to_thread(invoke, sift, ["model", *args], env=env)


async def test_the_cli_splits_and_promotes_and_exits_accordingly(
    tmp_path: Path, fakes: StartFake
) -> None:
    async with running_gateway(tmp_path, await profiles(fakes), ALIASES) as gw:
        malformed = await sift_model(gw, "split", "chat", "arm-a")
        assert malformed.exit_code == 2
        assert "is not PROFILE=PERCENT" in malformed.output

        too_much = await sift_model(gw, "split", "chat", "arm-a=80", "arm-b=30")
        assert too_much.exit_code == 2
        assert "must sum to 100" in too_much.output

        refused = await sift_model(gw, "split", "chat", "arm-a=80", "big=20")
        assert refused.exit_code == 1
        assert refused.output.startswith("refused: chat arm-a -> arm-a=80 big=20")
        assert "  arm big:" in refused.output

        done = await sift_model(gw, "split", "chat", "arm-a=80", "arm-b=20")
        assert done.exit_code == 0, done.output
        assert done.output.startswith("split: chat arm-a -> arm-a=80 arm-b=20")
        assert "warm-up" in done.output  # arm-b's, the new arm

        promoted = await sift_model(gw, "promote", "chat", "arm-b")
        assert promoted.exit_code == 0, promoted.output
        assert promoted.output.startswith("promoted: chat arm-a -> arm-b")
        assert gw.state.registry.resolve("chat").name == "arm-b"  # type: ignore[union-attr]
        assert gw.state.registry.splits == {}

        again = await sift_model(gw, "promote", "chat", "arm-b")
        assert again.exit_code == 2
        assert "not under an A/B split" in again.output

        history = await sift_model(gw, "history", "--alias", "chat")
        lines = history.output.splitlines()
        assert [line.split("  ")[2] for line in lines[:3]] == ["promoted", "split", "refused"]
