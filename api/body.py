"""JSON request bodies, parsed one way for every endpoint: the webargs parser of the schemas
(`ArgumentsParser`) and Flask's `request.get_json` (`BodyRequest`) both call `loads`.

Valid JSON that the API cannot use is refused here, before any schema runs, in the one error
shape: more than `MAX_JSON_VALUES` values (413, counted before parsing: a 10 MB body of `{},`
used to become 3.5 million dicts, +830 MB in a worker), nesting deeper than `MAX_JSON_DEPTH`
(400; the stdlib parser raises RecursionError near 1,000 levels, a 500 before) and lone
surrogates anywhere, keys included (422 naming where: `"\\ud800"` is valid JSON, but no UTF-8
text, so it used to fail at the database driver).
"""

from __future__ import annotations

import functools
import json
from typing import IO, Any, cast

import marshmallow as ma
from flask import Request
from webargs import core
from webargs.fields import DelimitedList
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.utils import cached_property

from api.limits import CappedStream
from infra.errors import DomainError, Invalid
from infra.values import SURROGATE_MESSAGE, text_problem

MAX_JSON_DEPTH = 64  # arrays and objects inside one another; our deepest body uses 4
# Values in one body (and cells in one CSV body): a 10,000-row bulk import of every field of
# a kind holds about 70,000. Parsed, a value costs 50 to 100 bytes beyond its text, so this
# bounds a parsed body at ~25 MB plus its text, whatever MAX_REQUEST_BYTES allows.
MAX_JSON_VALUES = 250_000


class TooManyValues(DomainError):
    http_status = 413

    def __init__(self, location: str, what: str) -> None:
        super().__init__(
            f"The {location.upper()} body holds more than {MAX_JSON_VALUES} {what}.",
            {location: [f"At most {MAX_JSON_VALUES} {what}."]},
        )


class TooDeep(DomainError):
    http_status = 400

    def __init__(self) -> None:
        super().__init__(
            f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.",
            {"json": [f"Nested deeper than {MAX_JSON_DEPTH} levels."]},
        )


class MalformedJson(DomainError):
    """A body sent as JSON that does not parse (400, naming where it broke)."""

    http_status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The request body is not valid JSON: {reason}.",
            {"json": [f"Not valid JSON: {reason}."]},
        )


class WrongMediaType(DomainError):
    """A body in another media type than the endpoint reads (415), e.g. a form-encoded body
    sent to a JSON endpoint: refused instead of read as an empty object (a 422 naming every
    required field, which hid the real mistake)."""

    http_status = 415

    def __init__(self, got: str, wanted: str = "application/json") -> None:
        super().__init__(
            f"The request body must be {wanted}, not {got or 'a body without Content-Type'}.",
            {"headers": {"Content-Type": [f"Send {wanted}."]}},
        )


def loads(data: str | bytes) -> Any:
    """Parse a JSON body (json.JSONDecodeError / UnicodeDecodeError when it is not JSON), then
    refuse what no endpoint accepts: too many values (TooManyValues, 413, before parsing), too
    deep (TooDeep, 400), lone surrogates (Invalid, 422)."""
    check_json(data)
    try:
        value = json.loads(data)
    except RecursionError:
        raise TooDeep() from None
    _check(value)
    return value


def check_json(data: str | bytes) -> None:
    """Refuse a JSON body holding more than MAX_JSON_VALUES values, before parsing it.

    Every value but the first of a container follows a comma, and every container opens with
    a bracket or a brace: their count bounds the values (commas inside strings only make it
    larger). `count` runs at memory speed (~10 ms for 10 MB); no tokenizer is needed.
    """
    if isinstance(data, bytes):
        marks = data.count(b",") + data.count(b"[") + data.count(b"{")
    else:
        marks = data.count(",") + data.count("[") + data.count("{")
    if marks >= MAX_JSON_VALUES:
        raise TooManyValues("json", "values (commas, brackets and braces are counted)")


def check_csv(data: bytes) -> None:
    """The cell count of a CSV body, bounded like JSON values (before decoding and parsing)."""
    if data.count(b",") + data.count(b"\n") >= MAX_JSON_VALUES:
        raise TooManyValues("csv", "cells (commas and line ends are counted)")


def _check(value: Any) -> None:
    """One pass over the parsed value, without recursion (depth is what it checks)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and text_problem(node) == SURROGATE_MESSAGE:
                raise _surrogate(path)
            continue
        if not isinstance(node, dict | list):
            continue
        if len(path) >= MAX_JSON_DEPTH:
            raise TooDeep()
        if isinstance(node, dict):
            for key, item in node.items():
                if not key.isascii() and text_problem(key) == SURROGATE_MESSAGE:
                    raise _surrogate((*path, key))
                stack.append((item, (*path, key)))
        else:
            stack.extend((item, (*path, i)) for i, item in enumerate(node))


def _surrogate(path: tuple[str | int, ...]) -> Invalid:
    # Keys are named with the surrogate escaped, never echoed as one.
    named = [
        p.encode("utf-8", "backslashreplace").decode() if isinstance(p, str) else p for p in path
    ]
    errors: Any = [SURROGATE_MESSAGE]
    for part in reversed(named):
        errors = {part: errors}
    where = ".".join(["json", *map(str, named)])
    return Invalid({"json": errors}, message=f"Invalid request: {where}: {SURROGATE_MESSAGE}")


class _BodyJSON:
    """What `Request.get_json` calls (`json_module.loads`): `loads` above."""

    loads = staticmethod(loads)


class BodyRequest(Request):
    """Flask's request, reading JSON bodies through `loads` and bodies without a length
    through `CappedStream` (413 past MAX_REQUEST_BYTES).

    Flask points each request's `json_module` at the app's JSON provider, which also parses
    responses in the test client (a group tree is legitimately deeper than a body may be):
    the request keeps `_BodyJSON` instead.
    """

    @property
    def json_module(self) -> Any:
        return _BodyJSON

    @json_module.setter
    def json_module(self, _value: Any) -> None:
        pass

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        """Werkzeug's spooled file for an uploaded part, remembered so `close` closes it even
        when the body is refused mid-part (413): werkzeug drops such a part unclosed, an open
        temporary file until the garbage collector finds it."""
        part = super()._get_file_stream(
            total_content_length, content_type, filename, content_length
        )
        self.__dict__.setdefault("_file_parts", []).append(part)
        return part

    def close(self) -> None:
        try:
            super().close()
        finally:
            for part in self.__dict__.pop("_file_parts", []):
                part.close()

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if (
            self.content_length is None
            and limit is not None
            and self.environ.get("wsgi.input_terminated")
        ):
            return cast(IO[bytes], CappedStream(self.environ["wsgi.input"], limit))
        return super().stream


_SCHEMAS: dict[type[ma.Schema], ma.Schema] = {}


@functools.lru_cache(maxsize=512)  # bounded: a schema built per request would not leak
def _list_parameters(schema: ma.Schema) -> tuple[frozenset[str], frozenset[str]]:
    """The query parameters of `schema` taking several values: (lists, delimited lists)."""
    multiple = frozenset(
        field.data_key or name
        for name, field in schema.fields.items()
        if isinstance(field, ma.fields.List)
    )
    delimited = frozenset(
        field.data_key or name
        for name, field in schema.fields.items()
        if isinstance(field, DelimitedList)
    )
    return multiple, delimited


class ArgumentsParser(FlaskParser):
    """flask-smorest's parser (webargs), reading JSON through `loads`.

    Unknown query parameters are refused (422 naming them) like unknown body fields: a mistyped
    filter must not silently widen a list to everything (schemathesis negative_data_rejection).
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": None,
        "querystring": None,
    }

    def _get_schema(self, argmap: Any, req: Request) -> ma.Schema:
        """One instance per schema class. Given a class (flask-smorest passes the view's),
        webargs instantiated it on every request, and a Schema's `__init__` deep-copies its
        declared fields: ~4% of a list page's CPU. A shared instance is marshmallow's
        documented use (`load` keeps no state on it; no schema here stores any)."""
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            schema = _SCHEMAS.get(argmap)
            if schema is None:
                schema = _SCHEMAS.setdefault(argmap, argmap())
            return schema
        return super()._get_schema(argmap, req)

    def load_querystring(self, req: Request, schema: Any) -> Any:
        """Query parameters; a filter taking several values (a `List` field) reads them
        repeated (`?status=a&status=b`), comma-separated (`?status=a,b`) or both, and a
        parameter taking one value refuses several (422) instead of using the first."""
        multiple, delimited = _list_parameters(schema)
        out: dict[str, Any] = {}
        for key in req.args:
            values = req.args.getlist(key)
            if key in delimited:  # webargs splits these itself
                out[key] = ",".join(values)
            elif key in multiple:
                out[key] = [part.strip() for v in values for part in v.split(",") if part.strip()]
            elif len(values) > 1:
                raise ma.ValidationError({key: ["Give this parameter once: it takes one value."]})
            else:
                out[key] = values[0]
        return out

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            if req.content_length or req.headers.get("Transfer-Encoding"):
                raise WrongMediaType(req.mimetype)
            return core.missing
        data = req.get_data(cache=True)
        check_json(data)  # before a large body is decoded
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJson(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        return loads(text)

    def _handle_invalid_json_error(
        self, error: json.JSONDecodeError | UnicodeDecodeError, req: Request, *args: Any, **kw: Any
    ) -> Any:
        if isinstance(error, json.JSONDecodeError):
            raise MalformedJson(
                f"{error.msg} at line {error.lineno}, column {error.colno}"
            ) from error
        raise MalformedJson(f"not UTF-8 text ({error.reason} at byte {error.start})") from error
