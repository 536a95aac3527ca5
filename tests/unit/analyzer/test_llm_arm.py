"""What an A/B test needs from one structured answer: both turns (the first and its repair)
carry the document's sticky key, and the profile that answered, with whether it needed the
repair, reaches the published analysis. A FAKE gateway transport answers invalid JSON first."""

import json

import httpx

from sift_analyzer import core
from sift_analyzer.entities import KnownEntities
from sift_analyzer.llm import StructuredLlm
from sift_analyzer.metrics import AnalyzerMetrics
from sift_common.contracts import Document
from sift_common.gateway_client import GatewayClient
from tests.unit.analyzer.test_core import GOOD_NEWS, NEWS

DOCUMENT = Document.create(source="wire", body="Acme beat estimates.", title="Acme", kind="news")


async def test_both_turns_are_sticky_and_the_arm_reaches_the_analysis() -> None:
    answers = ["{not json", json.dumps(GOOD_NEWS)]
    seen: list[httpx.Request] = []

    def fake_gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        content = answers[len(seen) - 1]
        body = {
            "id": f"c{len(seen)}",
            "model": "fake-b",
            "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
        }
        return httpx.Response(200, json=body, headers={"x-sift-profile": "qwen%20b"})

    transport = httpx.MockTransport(fake_gateway)
    async with GatewayClient("http://gateway", transport=transport) as gateway:
        llm = StructuredLlm(gateway, AnalyzerMetrics())
        messages = core.document_messages(NEWS, DOCUMENT)
        answer = await llm.ask(
            NEWS, "news", messages, priority="normal", request_id="r", sticky_key=DOCUMENT.id
        )
    assert [r.headers["x-sift-sticky-key"] for r in seen] == [DOCUMENT.id, DOCUMENT.id]
    assert [r.headers["x-request-id"] for r in seen] == ["r", "r:repair"]
    assert (answer.profile, answer.repaired) == ("qwen b", True)
    analysis, _ = core.analysis_of(
        NEWS,
        DOCUMENT,
        answer.result,
        answer.model,
        KnownEntities(),
        gateway_profile=answer.profile,
        repaired=answer.repaired,
    )
    assert (analysis.gateway_profile, analysis.repaired) == ("qwen b", True)
