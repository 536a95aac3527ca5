"""Request ids travel in an HTTP header, which is ASCII: non-ASCII ids (entity keys with
Korean names) must be encoded, not crash the request. A FAKE transport records the request."""

import httpx

from sift_common.gateway_client import GatewayClient


async def test_a_non_ascii_request_id_is_percent_encoded() -> None:
    seen: list[httpx.Request] = []

    def fake_gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"model": "fake-embed", "data": [{"index": 0, "embedding": [0.5, 0.5]}]}
        )

    async with GatewayClient("http://gateway", transport=httpx.MockTransport(fake_gateway)) as gw:
        answer = await gw.embeddings(["안녕"], request_id="company:카카오:digest")
    assert answer.model == "fake-embed"
    assert answer.vectors == [[0.5, 0.5]]
    assert seen[0].headers["x-request-id"] == "company:%EC%B9%B4%EC%B9%B4%EC%98%A4:digest"
