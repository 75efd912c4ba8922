"""`/docs` (Swagger UI) and `/redoc` served from local assets: nothing is loaded from a CDN.

FastAPI's own pages pull Swagger UI, ReDoc and a favicon from public CDNs, so
they are blank on a closed network. The `fastapi-offline` package ships those
assets; they are served from the installed package (never copied into this
repository) under `STATIC_URL`. Create the app with `docs_url=None,
redoc_url=None` and call `install_docs(app)`.

Swagger UI's "Authorize" dialog fills in the `HTTPBearer` scheme of
`app.api.security`: paste an API key and every "Try it out" request carries
`Authorization: Bearer <key>`. The key is kept in the browser's local storage
across reloads (`persistAuthorization`), like any credential typed into a page.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/static/docs"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"

# The package and folder holding swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png.
ASSETS_PACKAGE = ("fastapi_offline", "static")

# The browser itself refuses anything from elsewhere: ReDoc 2's sidebar footer, for one, points an <img> at
# cdn.redoc.ly (and hides it when it fails to load). Inline code is FastAPI's page templates and the
# styles both UIs inject; blob: workers are ReDoc's search.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    "persistAuthorization": True,  # the key typed into "Authorize" survives a page reload
    "validatorUrl": None,  # never ask validator.swagger.io about the spec
    "displayRequestDuration": True,
}


def install_docs(app: FastAPI) -> None:
    """Mount the packaged assets and add the Swagger UI and ReDoc pages (kept out of the schema)."""
    if app.openapi_url is None:
        return
    openapi_url = app.openapi_url
    app.mount(STATIC_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-static")
    swagger_ui_parameters = {**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})}

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return self_contained(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
                oauth2_redirect_url=None,  # Bearer API keys only: no OAuth2 flow to come back from
                swagger_ui_parameters=swagger_ui_parameters,
            )
        )

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return self_contained(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
                with_google_fonts=False,
            )
        )


def self_contained(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page
