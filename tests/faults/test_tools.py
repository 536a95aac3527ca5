"""The matrix's own tools, without any service: the ledger's judge fails on every way a store
can differ from what was fed, the FAKE upstream's answers are valid for every analysis profile,
and the TCP proxy cuts and refuses connections."""

import asyncio
from datetime import UTC, datetime

import pytest

from sift_analyzer.profiles import load_profiles
from sift_analyzer.settings import BUNDLED_PROFILES
from sift_common.contracts import DocumentKind
from tests.support.fake_upstream import minimal_instance
from tests.support.ledger import Ledger, StoredRow, calls_per_document, judge
from tests.support.tcp_proxy import TcpProxy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _row(ledger: Ledger, marker: str, **changes: object) -> StoredRow:
    document = ledger.documents[marker]
    values: dict[str, object] = {
        "document_id": marker.lower().ljust(64, "0"),
        "source": ledger.source,
        "external_id": document.external_id,
        "body": document.stored_body,
        "stored_at": NOW,
        "analyses": 1,
        "embeddings": 1,
        "bad_vectors": 0,
    }
    values.update(changes)
    return StoredRow(**values)  # type: ignore[arg-type]


def test_judge_counts_each_way_the_store_can_be_wrong() -> None:
    ledger = Ledger("unit")
    markers = [doc.marker for doc in ledger.add(6, "api")]
    rows = [
        _row(ledger, markers[0]),
        _row(ledger, markers[1]),
        _row(ledger, markers[1]),  # stored twice
        _row(ledger, markers[2], embeddings=0),
        _row(ledger, markers[3], body="something else " + markers[3]),
        _row(ledger, markers[4], analyses=2),
        _row(ledger, markers[0], source="someone-else"),  # a row nobody fed
    ]  # markers[5] never stored
    verdict = judge(ledger, rows)
    assert verdict.stored_once == 1
    assert verdict.lost == [ledger.documents[markers[5]].external_id]
    assert len(verdict.doubled) == 2
    assert len(verdict.incomplete) == 1
    assert len(verdict.wrong_body) == 1
    assert verdict.extra == [ledger.documents[markers[0]].external_id]
    assert not verdict.complete


def test_poison_is_expected_stripped_or_skipped() -> None:
    ledger = Ledger("unit")
    [good] = ledger.add(1, "collected")
    [poison] = ledger.add(1, "collected", poison=True)
    assert "\u0000" in poison.body
    assert "\u0000" not in poison.stored_body
    stored = judge(ledger, [_row(ledger, good.marker), _row(ledger, poison.marker)])
    assert stored.complete
    skipped = judge(ledger, [_row(ledger, good.marker)], skip={poison.marker})
    assert skipped.complete
    assert not judge(ledger, [_row(ledger, good.marker)]).complete


def test_calls_are_counted_per_document_from_prompts() -> None:
    ledger = Ledger("unit")
    first, second = ledger.add(2, "api")
    prompts = [first.body, f"repair: {first.body}", second.body, "LGR00000000x0001 not ours"]
    assert calls_per_document(ledger, prompts) == {first.marker: 2, second.marker: 1}


@pytest.mark.parametrize("kind", ["news", "review", "generic"])
def test_fake_answers_are_valid_for_every_profile(kind: DocumentKind) -> None:
    profile = load_profiles(BUNDLED_PROFILES).for_kind(kind)
    profile.output_model.model_validate(minimal_instance(profile.json_schema))


async def _read(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(4), 5)
    except ConnectionResetError:
        return b""


async def test_proxy_cuts_and_refuses_for_a_while() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    proxy = TcpProxy("127.0.0.1", server.sockets[0].getsockname()[1])
    port = await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        assert await reader.read(4) == b"ping"
        assert await proxy.cut(refuse_s=0.5) == 1
        assert await _read(reader) == b""  # cut
        refused_reader, _ = await asyncio.open_connection("127.0.0.1", port)
        assert await _read(refused_reader) == b""  # reset at once while refusing
        assert proxy.stats.refused == 1
        await asyncio.sleep(0.6)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"back")
        assert await reader.read(4) == b"back"
        writer.close()
    finally:
        await proxy.close()
        server.close()
