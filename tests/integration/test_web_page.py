"""The analyst page in Debian's chromium (Playwright, headless) against a seeded store served
by a real archiver in front of the real embeddings model: every view shows the store's data, a
paraphrase finds its document first, Korean is shown and searched, a filter changes the chart's
data, an export holds exactly the rows shown, a wrong key is refused with a readable message.

Screenshots go to pytest's tmp dir; with SIFT_WEB_SCREENSHOTS=<dir> they are written there too
(docs/screenshots/ holds the committed ones)."""

import csv
import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from sift_common.messaging.topology import Topology
from sift_common.store import migrate
from tests.support.archiver import (
    API_KEY,
    RunningArchiver,
    archiver_settings,
    embed_gateway,
    running_archiver,
)
from tests.support.databases import new_database
from tests.support.gateway import RunningGateway
from tests.support.rabbit import delete_topology
from tests.support.web_page import (
    ACME,
    CHROMIUM,
    KOREAN_TITLE,
    SAMSUNG,
    Seeded,
    launch_chromium,
    seed,
)

pytestmark = [pytest.mark.integration, pytest.mark.vllm]
__all__ = ["embed_gateway"]  # a fixture used by name


@pytest.fixture(scope="module")
async def site(
    rabbit_url: str, database_url: str, embed_gateway: RunningGateway
) -> AsyncIterator[tuple[RunningArchiver, Seeded]]:
    """One seeded store and archiver for the module: the tests only read."""
    namespace = f"tweb{os.urandom(3).hex()}."
    async with new_database(database_url) as url:
        await migrate.upgrade(url)
        settings = archiver_settings(rabbit_url, namespace, url, embed_gateway.url)
        try:
            async with running_archiver(settings) as running:
                docs, digests = await seed(rabbit_url, namespace, url)
                yield running, Seeded(url, namespace, docs, digests)
        finally:
            await delete_topology(rabbit_url, Topology(namespace, ()))


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make web-tools` installs Debian's chromium")
    async for launched in launch_chromium():
        yield launched


@pytest.fixture
async def page(
    browser: Browser, site: tuple[RunningArchiver, Seeded], tmp_path: Path
) -> AsyncIterator[Page]:
    """A fresh tab (its own sessionStorage) on the page; the console must stay free of script
    errors and Content-Security-Policy violations."""
    context = await browser.new_context(
        base_url=site[0].url, accept_downloads=True, viewport={"width": 1100, "height": 900}
    )
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    yield tab
    await context.close()
    # A refused call (401, 422) is logged by chromium as a failed load: expected where tested.
    assert [e for e in errors if not e.startswith("Failed to load resource")] == [], errors


async def sign_in(page: Page, key: str = API_KEY) -> None:
    await page.goto("/ui/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def shot(page: Page, tmp_path: Path, name: str) -> None:
    await page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
    keep = os.environ.get("SIFT_WEB_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=Path(keep) / f"{name}.png", full_page=True)


async def api(running: RunningArchiver, path: str, **params: Any) -> Any:
    async with running.http() as http:
        answer = await http.get(path, params=params)
    answer.raise_for_status()
    return answer.json()


def chart_data(raw: str | None) -> list[list[float]]:
    assert raw is not None
    data: list[list[float]] = json.loads(raw)
    return data


async def test_the_page_is_served_without_a_key_under_a_strict_policy(
    site: tuple[RunningArchiver, Seeded],
) -> None:
    async with httpx.AsyncClient(base_url=site[0].url) as http:
        root = await http.get("/")
        head = await http.head("/")
        index = await http.get("/ui/")
        script = await http.get("/ui/app.js")
        data = await http.get("/v1/status")
    assert root.status_code == 307
    assert root.headers["location"] == "/ui/"
    assert head.status_code == 307
    assert index.status_code == 200
    assert "text/html" in index.headers["content-type"]
    assert "<script" in index.text
    assert "<script>" not in index.text
    for answer in (index, script):
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert "unsafe-inline" not in answer.headers["content-security-policy"]
    assert data.status_code == 401  # the data still needs the key


async def test_a_wrong_key_shows_the_login_error_and_keeps_nothing(
    page: Page, tmp_path: Path
) -> None:
    await sign_in(page, "not-a-key")
    error = page.get_by_test_id("login-error")
    await expect(error).to_contain_text("The API key is missing or unknown")
    await shot(page, tmp_path, "login-error")
    stored = await page.evaluate("[sessionStorage.length, localStorage.length]")
    assert stored == [0, 0]
    await page.get_by_label("API key").fill(API_KEY)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Rankings")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('sift.apiKey')") == API_KEY
    assert await page.evaluate("localStorage.length") == 0


async def test_rankings_show_entities_with_sparklines_and_export_exactly_those_rows(
    page: Page, site: tuple[RunningArchiver, Seeded], tmp_path: Path
) -> None:
    await sign_in(page)
    await page.goto("/ui/#/rankings?direction=top&limit=3&window_days=30")
    rows = page.get_by_test_id("rows").locator("tbody tr")
    await expect(rows).to_have_count(3)
    expected = await api(site[0], "/v1/rankings", direction="top", window_days=30, limit=3)
    shown = await rows.locator("td:first-child").all_inner_texts()
    assert shown == [item["name"] for item in expected["items"]]
    assert SAMSUNG.name in shown  # Korean displayed as stored
    paths = await rows.locator("svg.spark path").evaluate_all(
        "ps => ps.map(p => p.getAttribute('d'))"
    )
    assert all(d.startswith("M") for d in paths)
    assert len(paths) == 3
    await shot(page, tmp_path, "rankings")
    async with page.expect_download() as waiting:
        await page.get_by_role("button", name="Export rankings top as CSV").click()
    download = await waiting.value
    text = Path(await download.path()).read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in exported] == shown
    assert [r["entity_key"] for r in exported] == [i["entity_key"] for i in expected["items"]]


async def test_timeline_draws_the_scores_and_a_filter_changes_its_data(
    page: Page, site: tuple[RunningArchiver, Seeded], tmp_path: Path
) -> None:
    await sign_in(page)
    await page.goto(f"/ui/#/timeline?entity={ACME.key}")
    chart = page.get_by_test_id("timeline-chart")
    await expect(chart.locator("canvas")).to_have_count(1)
    everything = chart_data(await chart.get_attribute("data-chart"))
    scores = await api(site[0], f"/v1/entities/{ACME.key}/scores")
    assert everything[1] == [b["mean"] for b in scores["items"]]
    assert sum(everything[4]) == 4  # four scored Acme documents (the re-analysis replaces)
    marks = page.get_by_test_id("digest-marks").locator("li")
    await expect(marks).to_have_count(2)
    await expect(marks.first).to_contain_text("Acme's quarter was strong")  # oldest first
    await shot(page, tmp_path, "timeline")

    await page.get_by_label("Source").fill("wire-b")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(
        f"{site[0].url}/ui/#/timeline?bucket=day&entity=company%3Aacme+corp&source=wire-b"
    )
    await expect(page.get_by_test_id("rows").locator("tbody tr")).to_have_count(2)
    chart = page.get_by_test_id("timeline-chart")
    filtered = chart_data(await chart.get_attribute("data-chart"))
    wire_b = await api(site[0], f"/v1/entities/{ACME.key}/scores", source="wire-b")
    assert filtered != everything
    assert filtered[1] == [b["mean"] for b in wire_b["items"]] == [70.0, 75.0]


async def test_a_paraphrased_search_finds_its_document_first_with_summary_score_and_entities(
    page: Page, site: tuple[RunningArchiver, Seeded], tmp_path: Path
) -> None:
    await sign_in(page)
    await page.get_by_role("link", name="Search").click()
    await page.get_by_label("Search by meaning").fill(
        "a car maker is calling back vehicles because the brakes are defective"
    )
    await page.get_by_role("button", name="Search").click()
    hits = page.get_by_test_id("rows").locator("li")
    await expect(hits.first).to_contain_text("Globex recalls cars")
    first = hits.first
    await expect(first).to_contain_text("Summary: Globex recalls cars")
    await expect(first).to_contain_text("score 20.0")
    await expect(first.get_by_role("link", name="Globex (20.0)")).to_be_visible()
    await shot(page, tmp_path, "search")
    # The link holds the query: opened afresh (same tab session), it shows the same first hit.
    link = page.url
    await page.goto("/ui/")
    await page.goto(link)
    await expect(page.get_by_test_id("rows").locator("li").first).to_contain_text(
        "Globex recalls cars"
    )


async def test_korean_is_searched_and_shown_with_its_language(
    page: Page, site: tuple[RunningArchiver, Seeded], tmp_path: Path
) -> None:
    await sign_in(page)
    await page.get_by_role("link", name="Search").click()
    await page.get_by_label("Search by meaning").fill("반도체 실적")
    await page.get_by_label("Language").fill("ko")
    await page.get_by_role("button", name="Search").click()
    hits = page.get_by_test_id("rows").locator("li")
    await expect(hits).to_have_count(1)
    title = hits.first.locator("h3")
    await expect(title).to_have_text(KOREAN_TITLE)
    await expect(title).to_have_attribute("lang", "ko")
    assert "q=%EB%B0%98%EB%8F%84%EC%B2%B4" in page.url  # UTF-8 in the shared link
    await hits.first.get_by_role("link", name=KOREAN_TITLE).click()
    await expect(page.locator("article")).to_have_attribute("lang", "ko")
    await expect(page.locator("article .body")).to_contain_text("메모리 반도체 가격 회복")
    await shot(page, tmp_path, "document-korean")


async def test_a_document_shows_its_analysis_history_and_exports_it(
    page: Page, site: tuple[RunningArchiver, Seeded], tmp_path: Path
) -> None:
    doc = site[1].documents[0].document
    await sign_in(page)
    await page.goto(f"/ui/#/document?id={doc.id}")
    rows = page.get_by_test_id("rows").locator("tbody tr")
    await expect(rows).to_have_count(2)
    assert [await rows.nth(i).locator("td").nth(2).inner_text() for i in range(2)] == ["v1", "v2"]
    await expect(page.locator("article h3")).to_have_text("Acme beats estimates")
    await shot(page, tmp_path, "document")
    async with page.expect_download() as waiting:
        await page.get_by_role("button", name="Export analyses").click()
    text = Path(await (await waiting.value).path()).read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [(r["prompt_version"], r["score"]) for r in exported] == [("v1", "80"), ("v2", "78")]


async def test_an_entity_shows_its_digest_history(
    page: Page, site: tuple[RunningArchiver, Seeded], tmp_path: Path
) -> None:
    await sign_in(page)
    await page.goto(f"/ui/#/entity?key={ACME.key}")
    rows = page.get_by_test_id("rows").locator("tbody tr")
    await expect(rows).to_have_count(2)
    newest = rows.first.locator("td").last
    await expect(newest).to_have_text("Acme's new cloud tool is well received.")
    await expect(page.get_by_text("Latest digest: score 72.0")).to_be_visible()
    await shot(page, tmp_path, "entity")
    await page.goto(f"/ui/#/entity?key=company:{SAMSUNG.name}")
    await expect(page.get_by_test_id("rows").locator("tbody tr td").last).to_have_text(
        "삼성전자의 반도체 실적이 회복되고 있다."
    )


async def test_status_shows_queues_and_refreshes_itself(
    page: Page, site: tuple[RunningArchiver, Seeded], tmp_path: Path
) -> None:
    await sign_in(page)
    await page.get_by_role("link", name="Status").click()
    queues = page.get_by_test_id("rows").locator("tbody tr")
    await expect(queues.first).to_be_visible()
    status = await api(site[0], "/v1/status")
    shown = await queues.locator("td:first-child").all_inner_texts()
    assert shown == list(status["queues"])
    store = page.get_by_test_id("store")
    await expect(store).to_contain_text("documents")
    await expect(store.locator("tr", has_text="documents").locator("td").last).to_have_text(
        str(status["store"]["documents"])
    )
    before = await page.get_by_test_id("refreshed").inner_text()
    await expect(page.get_by_test_id("refreshed")).not_to_have_text(before, timeout=12_000)
    await shot(page, tmp_path, "status")


async def test_a_bad_parameter_shows_the_apis_422_readably(page: Page) -> None:
    await sign_in(page)
    await page.goto("/ui/#/search?q=anything&k=500")
    error = page.get_by_test_id("error")
    await expect(error).to_have_text(
        "A parameter is wrong — k: " + "Input should be less than or equal to 100"
    )


async def test_the_page_is_used_with_the_keyboard_alone(page: Page) -> None:
    await page.goto("/ui/")
    await page.keyboard.type(API_KEY)  # the key field has the focus
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Rankings")).to_be_visible()
    # The focus is on the content now: back (Shift+Tab) to the navigation.
    assert await tab_to(page, "a[data-view=search]", "Shift+Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Search", exact=True)).to_be_visible()
    assert await page.evaluate("document.activeElement.dataset.view") == "search"  # kept
    assert await tab_to(page, "#f-q")  # from the navigation on into the view's first field
    await page.keyboard.type("brake sensors recall")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("rows").locator("li").first).to_contain_text("Globex")
    assert await page.evaluate("document.activeElement.id") == "main"  # focus not lost


async def tab_to(page: Page, selector: str, key: str = "Tab", presses: int = 15) -> bool:
    """Press `key` until the element `selector` names has the focus; False if it never does."""
    for _ in range(presses):
        await page.keyboard.press(key)
        if await page.evaluate(f"document.activeElement.matches({json.dumps(selector)})"):
            return True
    return False
