"""What the framework asks on every request, asked once (`api.CertsFlask.ensure_sync`,
`api.preconditions.view_class`)."""

from __future__ import annotations

import flask.app
import pytest

from api import preconditions


@pytest.fixture
def coroutine_checks(monkeypatch):
    asked: list[object] = []
    real = flask.app.iscoroutinefunction

    def counting(func: object) -> bool:
        asked.append(func)
        return real(func)

    monkeypatch.setattr(flask.app, "iscoroutinefunction", counting)
    return asked


@pytest.mark.parametrize("path", ["/org", "/employees?limit=5", "/views/employees?limit=5"])
def test_hooks_and_views_are_checked_for_coroutines_once(api, coroutine_checks, path):
    assert api.get(path).status_code == 200
    coroutine_checks.clear()
    assert api.get(path).status_code == 200
    # Only the view instance's bound methods are new on each request; every request hook,
    # teardown and view function was checked by the first request (Flask: fifteen a GET).
    assert all(hasattr(func, "__self__") for func in coroutine_checks)
    assert len(coroutine_checks) <= 2  # MethodView.dispatch_request, then its get


def test_plain_functions_are_kept_as_they_are(app):
    def hook() -> None:
        return None

    assert app.ensure_sync(hook) is hook
    assert app.ensure_sync(hook) is hook


def test_view_class_answers_per_endpoint(app, api):
    api.get("/org")
    kept = app.extensions[preconditions._VIEW_CLASSES]
    assert kept["org.CurrentOrganization"].__name__ == "CurrentOrganization"
    with app.test_request_context("/api/v1/nowhere"):
        assert preconditions.view_class() is None
