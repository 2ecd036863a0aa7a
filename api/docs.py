"""The interactive API documentation, served offline from an installed package.

Swagger UI (`/api/v1/docs`) and ReDoc (`/api/v1/docs/redoc`) are flask-smorest's pages; their
JavaScript and CSS come from `openapi-ui-bundles` (pinned in `pyproject.toml`), served here under
`/api/v1/docs/assets/`, so the pages work without network access and never load a CDN script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openapi_ui_bundles
from flask import Blueprint, Response, send_from_directory

ASSETS_PATH = "/docs/assets"
_BUNDLES: dict[str, Path] = {
    "swagger-ui": Path(openapi_ui_bundles.swagger_ui.static_path),
    "redoc": Path(openapi_ui_bundles.redoc.static_path),
}


def docs_config(prefix: str) -> dict[str, Any]:
    """flask-smorest's settings pointing both pages at the local assets under `prefix`."""
    assets = prefix + ASSETS_PATH
    return {
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": f"{assets}/swagger-ui/",
        "OPENAPI_REDOC_PATH": "docs/redoc",
        "OPENAPI_REDOC_URL": f"{assets}/redoc/redoc.standalone.js",
    }


def docs_assets_blueprint(prefix: str) -> Blueprint:
    """Static files of the two bundles (public, like the pages and the document)."""
    blp = Blueprint("docs_assets", __name__, url_prefix=prefix + ASSETS_PATH)

    @blp.get("/<any('swagger-ui', redoc):bundle>/<path:filename>")
    def asset(bundle: str, filename: str) -> Response:
        return send_from_directory(_BUNDLES[bundle], filename, max_age=86400)

    return blp
