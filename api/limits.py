"""Request size limits, checked before any view runs: the body (413, `MAX_REQUEST_BYTES`),
and the request line and headers (gunicorn's limits, 414/431), answered in the one error
shape.

Upload endpoints (a view class with `takes_upload = True`) have their own limit instead:
`DOCUMENT_MAX_BYTES` plus `UPLOAD_OVERHEAD` for the form fields and multipart framing around
the file. It is set on the request (`request.max_content_length`), so werkzeug's form parser
and `CappedStream` stop at it while reading; a declared length above it is refused unread.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import IO, Any

from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from api.errors import PROBLEM_JSON, error_body, error_response
from api.preconditions import view_class
from infra.settings import Settings

UPLOAD_OVERHEAD = 256 * 1024  # the form fields and multipart framing beside the file


def takes_upload() -> bool:
    return bool(getattr(view_class(), "takes_upload", False))


def init_limits(app: Flask, settings: Settings) -> None:
    limit = settings.max_request_bytes
    upload_limit = settings.document_max_bytes + UPLOAD_OVERHEAD
    # Werkzeug refuses a larger Content-Length as soon as the body is touched; a body without
    # one (chunked) is read through `CappedStream` (`api.body.BodyRequest.stream`).
    app.config["MAX_CONTENT_LENGTH"] = limit

    def too_large(_exc: RequestEntityTooLarge | None = None) -> Response:
        if takes_upload():
            most = settings.document_max_bytes
            return error_response(
                413,
                f"The upload is larger than the limit of {most} bytes per file "
                f"(DOCUMENT_MAX_BYTES; the whole request may carry {UPLOAD_OVERHEAD} more).",
                {"file": [f"At most {most} bytes."]},
            )
        return error_response(
            413,
            f"The request body is larger than the limit of {limit} bytes.",
            {"body": [f"At most {limit} bytes."]},
        )

    def check_body() -> Response | None:
        """A declared length over the limit is refused before any byte of it is read."""
        wanted = upload_limit if takes_upload() else limit
        request.max_content_length = wanted
        length = request.content_length
        return too_large() if length is not None and length > wanted else None

    app.before_request(check_body)
    app.register_error_handler(RequestEntityTooLarge, too_large)


class CappedStream(io.RawIOBase):
    """A body without Content-Length (chunked; gunicorn ends it), read up to `limit` bytes: one
    byte more raises RequestEntityTooLarge (a 413).

    Werkzeug's own max-length stream stops quietly at the limit instead, so such a body came
    in truncated: invalid JSON at best, a CSV import missing its last rows at worst.
    """

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__()
        self._stream = stream
        self._limit = limit
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._limit + 1 - self._read)
        data = self._stream.read(wanted) if wanted > 0 else b""
        self._read += len(data)
        if self._read > self._limit:
            raise RequestEntityTooLarge()
        buffer[: len(data)] = data
        return len(data)


def server_error_writer(
    send: Callable[[Any, bytes], None], request_line: int, header_fields: int, header_bytes: int
) -> Callable[[Any, int, str, str], None]:
    """A replacement for gunicorn's `util.write_error`, for the errors gunicorn answers itself
    before the app runs (a malformed request, a request line or headers over its limits):
    the one error shape (problem+json) instead of gunicorn's HTML page. Installed by
    gunicorn.conf.py with gunicorn's `send` and limits."""
    headers_rule = f"At most {header_fields} headers, each at most {header_bytes} bytes."

    def write_error(sock: Any, status: int, reason: str, mesg: str) -> None:
        if status == 431:
            body = error_body(
                431,
                f"The request headers are too large. {headers_rule}",
                {"headers": [headers_rule]},
            )
        elif status == 414:
            rule = f"The request line (method, path and query) is at most {request_line} bytes."
            body = error_body(414, f"The URL is too long. {rule}", {"url": [rule]})
        elif status >= 500 and not mesg:
            body = error_body(status, "Internal error.")
        elif status == 400:  # e.g. "Invalid Request Line '...'": gunicorn's reason, cut short
            body = error_body(400, f"Malformed HTTP request: {mesg[:200]}")
        else:
            body = error_body(status, f"{reason}: {mesg[:200]}" if mesg else reason)
        payload = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "Connection: close\r\n"
            f"Content-Type: {PROBLEM_JSON}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        send(sock, head.encode("latin-1") + payload)

    return write_error
