"""The analysts' web page (built from `services/archiver/web/`, see docs/web.md): static files
served at `/ui/` without a key — the page holds no data; every call it makes to `/v1` carries
the analyst's key — under a Content-Security-Policy that allows only this origin's own scripts,
styles and connections (no inline script, nothing from elsewhere)."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
PAGE_PATH = "/ui/"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class PageFiles(StaticFiles):
    """`StaticFiles` with the page's security headers on every answer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount_page(app: FastAPI) -> None:
    """The page at `/ui/`, and `/` sending a browser there."""
    app.mount(PAGE_PATH.rstrip("/"), PageFiles(directory=STATIC, html=True), name="ui")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(PAGE_PATH)
