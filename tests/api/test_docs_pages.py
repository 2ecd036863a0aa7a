"""The interactive docs (Swagger UI, ReDoc) load every script and stylesheet from this server."""

from __future__ import annotations

import re

import pytest

# Every src/href of the page: none may leave the server (no CDN: the docs work offline).
_REFS = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/api/v1/docs", "/api/v1/docs/redoc"])
def test_docs_page_and_its_assets_load_without_an_external_url(api, page):
    client = api.client  # anonymous: the docs are public, like the document
    resp = client.get(page)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    refs = _REFS.findall(html)
    assert refs, html
    assert [r for r in refs if not r.startswith("/api/v1/docs/assets/")] == []
    assert "http://" not in html
    assert "https://" not in html
    for ref in refs:
        asset = client.get(ref)
        try:
            assert asset.status_code == 200, ref
            assert len(asset.get_data()) > 1000, ref
            kind = "javascript" if ref.endswith(".js") else "css"
            assert kind in asset.content_type, (ref, asset.content_type)
        finally:
            asset.close()
    assert "/api/v1/openapi.json" in html


def test_docs_assets_refuse_other_paths(api):
    assert api.client.get("/api/v1/docs/assets/other/x.js").status_code == 404
    assert api.client.get("/api/v1/docs/assets/redoc/../../__init__.py").status_code == 404
