"""`/console`: the operator's page, served from this package's own files (nothing from a CDN).

A small static app written for Eventline (`assets/`: one HTML page, one script,
one stylesheet, no framework and no build step): it polls the admin endpoints
it shows once a second and draws its charts as SVG. Why not server-rendered
htmx: the data already has JSON endpoints that monitors and the CLI use; a
page that reads the same ones cannot show anything they do not, and needs no
template layer or vendored library.

The page and its files carry no data, so they are served to anyone; every
figure on it comes from an endpoint behind the `admin` role, with the key the
operator types into the page (kept in the tab's sessionStorage only). The
Content-Security-Policy allows nothing but this origin: no inline script, no
inline style, no other host.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/static/console"
PAGE = __file__.rsplit("/", 1)[0] + "/assets/console.html"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

router = APIRouter(include_in_schema=False)


@router.get("/console")
async def console() -> FileResponse:
    return FileResponse(PAGE, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"})


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(packages=[("app.api.console", "assets")]), name="console-static")
