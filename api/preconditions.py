"""Strong ETags on single-resource GETs, and `If-Match` on PATCH and DELETE against lost updates.

The ETag is the sha256 of the resource's JSON representation, so it changes whenever anything
the GET shows changes, without a version column on every table. A PATCH or DELETE carrying
`If-Match` first renders the same GET inside its own transaction, with the rows it loads locked
(`infra.database.LOCK_LOADED_ROWS`: SELECT ... FOR UPDATE on PostgreSQL), and answers 412 unless
one of the listed tags (or `*`) is the current one. Two writers holding the same tag therefore
cannot both win: the second waits for the first one's lock and then sees a new tag.

Rendering the GET needs the GET's scope: a token that may change a resource but not read it
gets no ETag, and its If-Match answers 403 naming the read scope.

An organization that sets `require_if_match` makes the header mandatory on PATCH of the
resources that opt in (`IF_MATCH_BY_ORG` on the view class: certifications and groups): 428
without it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView

from api.db import request_session
from infra.database import LOCK_LOADED_ROWS
from infra.errors import Forbidden, Invalid, PreconditionFailed, PreconditionRequired
from tenancy.auth import authenticate, current_organization

# A view class attribute: True → PATCH needs If-Match when the org's `require_if_match` is on.
IF_MATCH_BY_ORG = "if_match_required_by_org"
WRITE_METHODS = ("PATCH", "DELETE")


def etag_for(body: bytes) -> str:
    """A strong entity tag of a representation."""
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def view_class() -> type[MethodView] | None:
    """The `MethodView` class of the request's endpoint. Kept per app and endpoint (several
    hooks ask it on every request): Flask refuses new routes once an app has served one."""
    endpoint = request.endpoint or ""
    kept = _kept_by_app(_VIEW_CLASSES)
    if endpoint not in kept:
        cls = getattr(current_app.view_functions.get(endpoint), "view_class", None)
        kept[endpoint] = cls if isinstance(cls, type) and issubclass(cls, MethodView) else None
    found: type[MethodView] | None = kept[endpoint]
    return found


def is_single_resource() -> bool:
    """The URL names one resource: it ends in an id, or it can be changed (PATCH/PUT/DELETE)."""
    rule = request.url_rule
    if rule is None:
        return False
    key = (request.endpoint, rule.rule)
    kept = _kept_by_app(_SINGLE_RESOURCES)
    if key not in kept:
        cls = view_class()
        kept[key] = cls is not None and (
            (rule.rule.endswith(">") and ":" in rule.rule.rsplit("<", 1)[-1])
            or any(hasattr(cls, m) for m in ("patch", "put", "delete"))
        )
    single: bool = kept[key]
    return single


_VIEW_CLASSES = "certs.view_classes"
_SINGLE_RESOURCES = "certs.single_resources"


def _kept_by_app(name: str) -> dict[Any, Any]:
    kept: dict[Any, Any] = current_app.extensions.setdefault(name, {})
    return kept


def tag_response(response: Response) -> Response:
    """Add the ETag to a single resource's 200 JSON answer; 304 for a matching If-None-Match.

    A PATCH's answer carries the ETag of the version it wrote (what a GET now answers), so a
    client can send its next change without reading the resource again.
    """
    cls = view_class()
    if request.method == "PATCH" and response.status_code == 200 and hasattr(cls, "get"):
        try:
            response.headers["ETag"] = _current_tag(cls, lock=False)  # type: ignore[arg-type]
        except Forbidden:
            pass  # a token that may change but not read the resource gets no tag
        return response
    if (
        request.method not in ("GET", "HEAD")
        or response.status_code != 200
        or response.is_streamed
        or response.mimetype != "application/json"
        or not is_single_resource()
    ):
        return response
    tag = etag_for(response.get_data())
    response.headers["ETag"] = tag
    if tag in _listed_tags(request.headers.get("If-None-Match")):
        not_modified = Response(status=304)
        not_modified.headers["ETag"] = tag
        return not_modified
    return response


def check_preconditions() -> None:
    """For PATCH/DELETE: 428 when the org requires If-Match here, 412 when it is stale."""
    if request.method not in WRITE_METHODS:
        return
    cls = view_class()
    if cls is None or not hasattr(cls, "get"):
        return
    header = request.headers.get("If-Match")
    if header is None:
        if request.method == "PATCH" and getattr(cls, IF_MATCH_BY_ORG, False):
            authenticate()
            if current_organization().require_if_match:
                raise PreconditionRequired(
                    "This organization requires If-Match on this change: GET the resource and "
                    "send its ETag in If-Match.",
                    {"headers": {"If-Match": ["Required by the organization's settings."]}},
                )
        return
    authenticate()  # the tenant, before the session that renders the current version begins
    tags = _listed_tags(header, "If-Match")
    current = _current_tag(cls)
    if "*" not in tags and current not in tags:
        raise PreconditionFailed(
            "The resource changed since you read it (If-Match does not match its ETag): "
            "GET it again, reapply your change and send the new ETag.",
            {"headers": {"If-Match": ["Does not match the current ETag."]}},
        )


def _current_tag(cls: type[MethodView], *, lock: bool = True) -> str:
    """The ETag a GET of this URL answers now (`lock`: its rows locked until commit)."""
    session = request_session()
    session.info[LOCK_LOADED_ROWS] = lock
    try:
        rv: Any = cls().get(**(request.view_args or {}))  # type: ignore[attr-defined]
    finally:
        session.info.pop(LOCK_LOADED_ROWS, None)
    return etag_for(current_app.make_response(rv).get_data())


# `*`, or a comma-separated list of entity tags (RFC 9110 §8.8.3), weak ones included.
TAG_LIST = r'^\s*(\*|(W/)?"[\x21\x23-\x7e]*"(\s*,\s*(W/)?"[\x21\x23-\x7e]*")*)\s*$'
_TAG_LIST = re.compile(TAG_LIST)


def _listed_tags(header: str | None, name: str = "If-None-Match") -> set[str]:
    """The strong tags of an If-Match / If-None-Match header (weak ones never match); a value
    that is no list of tags is a 422 naming the header."""
    if header is None:
        return set()
    if not _TAG_LIST.match(header):
        raise Invalid(
            {"headers": {name: ['A quoted ETag (e.g. "3f2a..."), a comma-separated list, or *.']}}
        )
    return {part.strip() for part in header.split(",") if not part.strip().startswith("W/")}
