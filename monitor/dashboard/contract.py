"""The dashboard's routes as the monitor's OpenAPI document shows them
(:mod:`taskstream.monitor.openapi`).

Declared beside the routes of :func:`taskstream.monitor.dashboard.install_dashboard`; the test that
compares the served routes with the document fails when the two part.
"""

from __future__ import annotations

from taskstream.monitor.contract import Operation, PathParam

__all__ = ["OPERATIONS"]

_TAG = ("dashboard",)

OPERATIONS = (
    Operation(
        method="get",
        path="/dashboard",
        operation_id="getDashboard",
        summary="The dashboard page (it asks for the token when the API needs one)",
        responses={200: {"description": "the page", "content": {"text/html": {}}}},
        open=True,
        tags=_TAG,
    ),
    Operation(
        method="get",
        path="/dashboard/{asset}",
        operation_id="getDashboardAsset",
        summary="The dashboard's script and style sheets",
        parameters=(PathParam(name="asset", description="e.g. dashboard.js"),),
        responses={
            200: {
                "description": "the file",
                "content": {"text/javascript": {}, "text/css": {}},
            },
            304: {"description": "unchanged (If-None-Match)"},
        },
        errors=(404,),
        open=True,
        tags=_TAG,
    ),
    Operation(
        method="get",
        path="/",
        operation_id="getRoot",
        summary="A redirect to /dashboard",
        responses={
            302: {
                "description": "to /dashboard",
                "headers": {"Location": {"schema": {"type": "string"}}},
            }
        },
        open=True,
        tags=_TAG,
    ),
)
