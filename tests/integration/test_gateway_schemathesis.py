"""The real gateway in front of FAKE chat and embeddings upstreams: schemathesis on the OpenAPI
description of its public surface (services/llm-gateway/src/sift_gateway/openapi.yaml,
written by hand: aiohttp generates none). No 5xx from the gateway itself, every answer
documented and conforming, the key checked. The archiver's and collector's twins:
test_archiver_schemathesis.py, test_collector_schemathesis.py."""

import asyncio
import json
from pathlib import Path

import pytest
import schemathesis
import yaml
from aiohttp import web
from schemathesis import GenerationMode

from tests.conftest import ROOT
from tests.support.archiver import FakeEmbeddings, fake_vector
from tests.support.fake_upstream import FakeUpstream, running_fake
from tests.support.fuzzing import Seen, fuzz_operations
from tests.support.gateway import chat_profile, embed_profile, running_gateway

pytestmark = pytest.mark.integration

KEY = "s" * 40
OPENAPI = ROOT / "services/llm-gateway/src/sift_gateway/openapi.yaml"
EXAMPLES = 30  # per operation and mode: about 15 s


class AnyInputEmbeddings(FakeEmbeddings):
    """FakeEmbeddings that also takes token ids (one text's, or several texts'), as vLLM does."""

    async def _embeddings(self, request: web.Request) -> web.Response:
        sent = (await self._record(request))["body"]["input"]
        texts = [sent] if isinstance(sent, str) or isinstance(sent[0], int) else sent
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(json.dumps(text))}
            for i, text in enumerate(texts)
        ]
        return web.json_response({"object": "list", "data": data, "model": self.model})


def run_schemathesis(base_url: str, mode: GenerationMode) -> tuple[Seen, dict[str, str]]:
    document = yaml.safe_load(OPENAPI.read_text())
    # Any model name but the two served is a 404: generate those two (and, negative, others).
    for route, alias in (("/v1/chat/completions", "chat"), ("/v1/embeddings", "embed")):
        body = document["paths"][route]["post"]["requestBody"]["content"]["application/json"]
        model = document["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
        model["properties"]["model"] = {"type": "string", "enum": [alias]}
    schema = schemathesis.openapi.from_dict(document)
    schema.location = f"{base_url}/openapi.yaml"
    schema.config.generation.update(allow_x00=False, allow_extra_parameters=False)
    # Derandomized (in fuzz_operations): 200 per operation and mode found nothing.
    return fuzz_operations(
        schema,
        mode,
        examples=EXAMPLES,
        headers={"Authorization": f"Bearer {KEY}"},
        takes_input=lambda operation: bool(len(operation.body)),  # health, models: none
        base_url=base_url,
    )


@pytest.mark.timeout(240)
async def test_public_surface_answers_only_documented_statuses_and_never_5xx(
    tmp_path: Path,
) -> None:
    async with (
        running_fake(FakeUpstream()) as chat_fake,
        running_fake(AnyInputEmbeddings()) as embed_fake,
    ):
        profiles = {
            "fake-chat": chat_profile(chat_fake.url),
            "fake-embed": embed_profile(embed_fake.url, served_model=embed_fake.model),
        }
        aliases = {"chat": "fake-chat", "embed": "fake-embed"}
        keys = {KEY: {"name": "schemathesis", "priority": "interactive"}}
        async with running_gateway(
            tmp_path, profiles, aliases, gateway_api_keys=keys, auth_failures_per_minute=100_000
        ) as gateway:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                seen, failures = await asyncio.to_thread(run_schemathesis, gateway.url, mode)
                print(mode, dict(seen))
                assert not failures, "\n\n".join(f"{op}: {t}" for op, t in failures.items())
                expected = (200,) if mode.is_positive else (400,)
                for route in ("POST /v1/chat/completions", "POST /v1/embeddings"):
                    assert sum(seen[(route, status)] for status in expected) > 0, seen
