"""The dashboard: a static page the monitor serves, which reads the monitor's JSON API.

``install_dashboard(app)`` adds three routes to the monitor's faust web server:

- ``GET /dashboard``: the page (``index.html``), never cached, with a Content-Security-Policy
  that allows only this origin: no inline script or style, no other host.
- ``GET /dashboard/{asset}``: its script and style sheet, from a fixed list (no file system
  lookups by request path); revalidated with an ETag.
- ``GET /``: a redirect to ``/dashboard``.

The assets are package data read once at install time. The page polls the JSON
endpoints itself (``dashboard.js``), so nothing here knows their shapes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

import faust
from faust.web import Request, Response, View

__all__ = ["CONTENT_SECURITY_POLICY", "install_dashboard"]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_ASSET_TYPES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


def _load_assets() -> tuple[str, dict[str, _Asset]]:
    package = files(__name__)
    page = package.joinpath("index.html").read_text(encoding="utf-8")
    assets = {}
    for name, content_type in _ASSET_TYPES.items():
        body = package.joinpath(name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[name] = _Asset(body, content_type, etag)
    return page, assets


def install_dashboard(app: faust.App) -> None:
    """Serve the dashboard from the monitor's web server at ``/dashboard``."""
    page, assets = _load_assets()
    page_headers = {
        **_COMMON_HEADERS,
        "Cache-Control": "no-store",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    }

    @app.page("/dashboard", name="dashboard")
    async def dashboard(self: View, request: Request) -> Response:
        return self.html(page, headers=dict(page_headers))

    @app.page("/dashboard/{asset}", name="dashboard-asset")
    async def dashboard_asset(self: View, request: Request, asset: str) -> Response:
        found = assets.get(asset)
        if found is None:
            return self.json(
                {"error": "not_found", "message": f"no dashboard asset {asset!r}"}, status=404
            )
        headers = {**_COMMON_HEADERS, "Cache-Control": "no-cache", "ETag": found.etag}
        if request.headers.get("If-None-Match") == found.etag:
            return self.bytes(b"", status=304, headers=headers)
        return self.bytes(found.body, headers={**headers, "Content-Type": found.content_type})

    @app.page("/", name="dashboard-root")
    async def root(self: View, request: Request) -> Response:
        return self.bytes(b"", status=302, headers={"Location": "/dashboard"})
