"""The HTTP semantics every route gets, around the view and inside its transaction.

`run_view` is called by `CertsFlask.dispatch_request` (inside `api.unit_of_work`), so new
routes need nothing of their own:

* POST with `Idempotency-Key`: stored and replayed (`api.idempotency`);
* PATCH / DELETE: `If-Match` checked, 428 where the org requires it (`api.preconditions`);
* 201: a `Location` naming the new resource (`created_location`);
* GET of one resource: a strong `ETag`, and 304 for a matching `If-None-Match`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, current_app, json, request
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from api.idempotency import idempotent_post
from api.preconditions import check_preconditions, tag_response, view_class

# A view class attribute: where a 201 of its POST lives, relative to the API prefix, formatted
# with the URL's variables and the created body's fields, e.g. "/submissions/{id}". Without
# it: the request's path + "/" + the body's `id`, when that URL is a GET route.
CREATED_LOCATION = "created_location"


def run_view(view: Callable[[], Any]) -> Response:
    """`view()` with the API's write and read semantics applied."""
    replayed = idempotent_post(lambda: _run(view))
    return replayed if replayed is not None else _run(view)


def _run(view: Callable[[], Any]) -> Response:
    check_preconditions()
    response = current_app.make_response(view())
    if response.status_code == 201 and "Location" not in response.headers:
        location = created_location(response)
        if location:
            response.headers["Location"] = location
    return tag_response(response)


def created_location(response: Response) -> str | None:
    """The URL of the resource a 201 created (absolute path)."""
    body = _json(response)
    if not isinstance(body, dict):
        return None
    cls = view_class()
    template = getattr(cls, CREATED_LOCATION, None) if cls else None
    if template:
        from api import API_PREFIX  # here: `api` imports this module

        try:
            return API_PREFIX + str(template).format(**{**body, **(request.view_args or {})})
        except (KeyError, IndexError):
            return None
    if "id" not in body:
        return None
    path = f"{request.path.rstrip('/')}/{body['id']}"
    return path if _is_get_route(path) else None


def _is_get_route(path: str) -> bool:
    adapter = current_app.url_map.bind("")
    try:
        adapter.match(path, method="GET")
    except (NotFound, MethodNotAllowed, RequestRedirect):
        return False
    return True


def _json(response: Response) -> Any:
    if response.is_streamed or response.mimetype != "application/json":
        return None
    try:
        return json.loads(response.get_data())
    except ValueError:
        return None
