"""``/docs``: Swagger UI of the monitor's OpenAPI document, from files in the package.

The page and its script and style come from ``fastapi-offline``'s bundled Swagger UI (the
core serves the same at its ``/docs``), so the page works without internet. Open: no token
(the page's "Authorize" takes one for the calls it makes).
"""

from __future__ import annotations

from importlib.resources import files

import faust
from fastapi.openapi.docs import get_swagger_ui_html
from faust.web import Request, Response, View

from taskstream.monitor.contract import Operation, PathParam

__all__ = ["ASSETS", "OPERATIONS", "install_api_docs"]

_TAG = ("docs",)
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
"""The files the page loads, by name, with their content types."""

PAGE = Operation(
    method="get",
    path="/docs",
    operation_id="getApiDocs",
    summary="Swagger UI of this API (works offline)",
    responses={200: {"description": "the page", "content": {"text/html": {}}}},
    open=True,
    tags=_TAG,
)
ASSET = Operation(
    method="get",
    path="/docs/assets/{name}",
    operation_id="getApiDocsAsset",
    summary="The Swagger UI page's script, style sheet and icon",
    parameters=(PathParam(name="name", description="e.g. swagger-ui-bundle.js"),),
    responses={
        200: {
            "description": "the file",
            "content": {content_type: {} for content_type in sorted(set(ASSETS.values()))},
        }
    },
    errors=(404,),
    open=True,
    tags=_TAG,
)
OPERATIONS = (PAGE, ASSET)


def _page() -> str:
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="taskstream monitor - Swagger UI",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
    )
    return bytes(page.body).decode()


def install_api_docs(app: faust.App) -> None:
    """Serve ``/docs`` and its files."""
    page = _page()
    static = files("fastapi_offline") / "static"
    bodies = {name: static.joinpath(name).read_bytes() for name in ASSETS}

    @app.page(PAGE.path, name="api-docs")
    async def docs(self: View, request: Request) -> Response:
        return self.html(page)

    @app.page(ASSET.path, name="api-docs-asset")
    async def asset(self: View, request: Request, name: str) -> Response:
        body = bodies.get(name)
        if body is None:
            return self.json(
                {"error": "not_found", "message": f"no such file {name!r}: see /docs"}, status=404
            )
        headers = {"Cache-Control": "public, max-age=86400", "Content-Type": ASSETS[name]}
        return self.bytes(body, headers=headers)
