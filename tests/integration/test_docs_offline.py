"""`/docs` and `/redoc` reference only same-origin assets, and every one of them is served."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from app.config import Settings
from tests.support import api_client, fresh_namespace

EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class References(HTMLParser):
    """Every URL a page points at: src/href attributes, plus ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href", "spec-url") and value is not None]


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    # Swagger UI gets the schema from its inline script: `url: '/openapi.json'`.
    return parser.urls + re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", html)


def same_origin(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/") and not url.startswith("//")


Pages = dict[str, tuple[str, dict[str, tuple[int, str]]]]


@pytest.fixture(scope="module")
async def docs_pages(settings: Settings) -> Pages:
    """Per page: its HTML, and for every URL it references, the status and content type served there.

    `/openapi.json` is there too, as the schema's path names (one API instance for the whole module).
    """
    ns = await fresh_namespace(settings)
    pages: Pages = {}
    async with api_client(ns) as http:
        pages["/openapi.json"] = ("\n".join((await http.get("/openapi.json")).json()["paths"]), {})
        for page in ("/docs", "/redoc"):
            response = await http.get(page)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/html")
            # The browser, too, is told to refuse anything from elsewhere.
            policy = response.headers.get("content-security-policy", "")
            assert "default-src 'self'" in policy and "img-src 'self' data:" in policy, policy
            served: dict[str, tuple[int, str]] = {}
            for url in references(response.text):
                asset = await http.get(url) if same_origin(url) else httpx.Response(599)
                served[url] = (asset.status_code, asset.headers.get("content-type", ""))
            pages[page] = (response.text, served)
    return pages


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_page_references_nothing_outside_the_api(docs_pages: Pages, page: str) -> None:
    html, served = docs_pages[page]
    assert served, f"{page} references no assets at all"
    assert [url for url in served if not same_origin(url)] == []
    assert "://" not in html, "an absolute URL in the page: something may load from the network"
    assert "cdn" not in html.lower() and "fonts.googleapis" not in html


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_every_referenced_asset_is_served_with_a_sensible_type(docs_pages: Pages, page: str) -> None:
    _, served = docs_pages[page]
    for url, (status, content_type) in served.items():
        assert status == 200, f"{url}: {status}"
        path = urlsplit(url).path
        if path.endswith(".json"):
            assert content_type.startswith("application/json"), f"{url}: {content_type}"
            continue
        suffix = path[path.rfind(".") :]
        assert suffix in EXPECTED_TYPES, f"{url}: an unexpected kind of asset"
        assert EXPECTED_TYPES[suffix] in content_type, f"{url}: {content_type}"


async def test_swagger_ui_and_redoc_are_both_referenced(docs_pages: Pages) -> None:
    docs = set(docs_pages["/docs"][1])
    redoc = set(docs_pages["/redoc"][1])
    assert {"/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css", "/openapi.json"} <= docs
    assert {"/static/docs/redoc.standalone.js", "/openapi.json"} <= redoc


async def test_the_docs_pages_stay_out_of_the_schema(docs_pages: Pages) -> None:
    paths = docs_pages["/openapi.json"][0].splitlines()
    assert "/accounts" in paths
    assert not [path for path in paths if path.startswith(("/docs", "/redoc", "/static"))]
