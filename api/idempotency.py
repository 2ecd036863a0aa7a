"""`Idempotency-Key` on POST: a retried request gets the first answer instead of running twice.

The key is stored per organization for 24 hours with a fingerprint of the request (method,
path, query, media type and body bytes) and, once the view has answered, that answer (status,
body, `Content-Type` and `Location`), all in the request's own transaction
(`tenancy.idempotency`). Hence:

* the same key and the same request again → the stored answer, marked `Idempotent-Replayed:
  true`, and nothing runs;
* the same key with another request → 422 naming the header;
* a request that failed (any error answer) stored nothing: sending it again runs it again;
* two requests with the same key at once → the second waits for the first one's commit, then
  replays it (PostgreSQL: the primary key's row lock).

Requests without an organization (platform operators) are not keyed: they ignore the header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request

from api.db import request_session
from infra import context
from infra.database import utcnow
from infra.errors import Invalid
from tenancy import idempotency
from tenancy.auth import authenticate

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Headers of the first answer that a replay repeats (the rest are per request: ids, limits).
STORED_HEADERS = ("Content-Type", "Location")


def idempotent_post(view: Callable[[], Any]) -> Response | None:
    """Run `view` under the request's `Idempotency-Key`; None when the request carries none."""
    key = request.headers.get(HEADER)
    if key is None or request.method != "POST":
        return None
    _check_key(key)
    authenticate()  # the key belongs to the token's organization
    if context.current_org_id() is None:
        return None
    session = request_session()
    fingerprint = request_fingerprint()
    stored = idempotency.claim(
        session,
        key,
        fingerprint=fingerprint,
        method=request.method,
        path=request.full_path,
        now=utcnow(),
    )
    if stored is not None:
        if stored.fingerprint != fingerprint:
            raise Invalid(
                {"headers": {HEADER: ["Already used for a different request (24 hours)."]}},
                f"{HEADER} {key!r} was already used for a different request: send a new key "
                "for a new request, or the same request to get its answer again.",
            )
        replay = Response(stored.body, status=stored.status, headers=stored.headers)
        replay.headers[REPLAYED_HEADER] = "true"
        return replay
    response = current_app.make_response(view())
    if response.is_streamed:  # not storable: forget the key so a retry runs again
        idempotency.release(session, key)
        return response
    headers = {h: response.headers[h] for h in STORED_HEADERS if h in response.headers}
    idempotency.record(
        session, key, status=response.status_code, body=response.get_data(), headers=headers
    )
    return response


def _check_key(key: str) -> None:
    if (
        not 1 <= len(key) <= idempotency.MAX_KEY_LENGTH
        or not key.isascii()
        or not key.isprintable()
    ):
        raise Invalid(
            {
                "headers": {
                    HEADER: [
                        f"1 to {idempotency.MAX_KEY_LENGTH} printable ASCII characters, "
                        "e.g. a UUID."
                    ]
                }
            }
        )


def request_fingerprint() -> str:
    """sha256 of what makes two requests the same request."""
    digest = hashlib.sha256()
    head = f"{request.method} {request.path}?{request.query_string.decode('latin-1')}"
    digest.update(f"{head}\n{request.mimetype}\n".encode())
    if request.mimetype.startswith("multipart/"):
        # Uploads: the form fields and each file's name and bytes (spooled, so seekable).
        for name, value in request.form.items(multi=True):
            digest.update(f"{name}={value}\n".encode())
        for name, upload in request.files.items(multi=True):
            digest.update(f"{name}:{upload.filename}\n".encode())
            while chunk := upload.stream.read(1 << 16):
                digest.update(chunk)
            upload.stream.seek(0)
    else:
        digest.update(request.get_data(cache=True))
    return digest.hexdigest()
