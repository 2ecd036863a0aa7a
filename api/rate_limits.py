"""Rate limits: Flask-Limiter counting every API request per token subject and per organization,
and the heavy ones (bulk writes, CSV exports) in a smaller budget of their own.

Counters live in `RATE_LIMIT_STORAGE_URL` (Redis by default when `REDIS_URL` is set, so every
gunicorn worker and replica shares them; in-process memory on the embedded default). A refusal
is a 429 in the one error shape with `Retry-After`; every counted answer carries `RateLimit-
Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds) and `RateLimit-Policy` for the
budget closest to running out (IETF draft "RateLimit header fields for HTTP").

Keys come from the bearer token, verified (signature and expiry) but without a database
lookup: `sub:<org>:<sub>` and `org:<org>`. A request without a valid token is counted by its
client address, so invalid tokens cannot mint fresh budgets. A storage outage never fails a
request: the limiter falls back to per-process memory and checks the storage again later.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from flask import Flask, Response, g, request
from flask_jwt_extended import decode_token
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded, RequestLimit
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from api.errors import error_response
from infra.settings import Settings

log = logging.getLogger("certs.api")

# A view class attribute: True → its requests also count against RATE_LIMIT_HEAVY.
HEAVY = "heavy_rate_limit"
# Redis must answer a counter update this fast, or the limiter falls back to memory.
STORAGE_TIMEOUT_S = 0.5


def _identity() -> tuple[str | None, str | None]:
    """(org, sub) of a valid bearer token, else (None, None); once per request."""
    if "rate_identity" not in g:
        org = sub = None
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            try:
                claims = decode_token(header.removeprefix("Bearer ").strip())
                org = str(claims["org"]) if claims.get("org") else None
                sub = str(claims["sub"])
            except Exception:  # noqa: BLE001 - any bad token: counted by address instead
                org = sub = None
        g.rate_identity = (org, sub)
    identity: tuple[str | None, str | None] = g.rate_identity
    return identity


def _address() -> str:
    return request.remote_addr or "unknown"


def subject_key() -> str:
    org, sub = _identity()
    return f"sub:{org or '-'}:{sub}" if sub else f"addr:{_address()}"


def org_key() -> str:
    org, _sub = _identity()
    return f"org:{org}" if org else f"org-addr:{_address()}"


def is_heavy() -> bool:
    """Bulk writes and CSV exports (by URL, by `format=csv` / `Accept: text/csv`, or declared)."""
    from api.preconditions import view_class

    cls = view_class()
    if cls is not None and getattr(cls, HEAVY, False):
        return True
    if request.method == "POST" and request.path.rstrip("/").endswith("/bulk"):
        return True
    wants_csv = request.accept_mimetypes.best == "text/csv"
    return request.method == "GET" and (request.args.get("format") == "csv" or wants_csv)


def _exempt() -> bool:
    """Only the API is counted: not probes, metrics, the docs or the OpenAPI document."""
    from api import API_PREFIX

    path = request.path
    return (
        request.method == "OPTIONS"
        or not path.startswith(API_PREFIX + "/")
        or path.startswith((API_PREFIX + "/docs", API_PREFIX + "/redoc", API_PREFIX + "/openapi"))
    )


def init_rate_limits(app: Flask, settings: Settings) -> Limiter:
    namespace = settings.redis_namespace
    options: dict[str, Any] = {}
    if settings.rate_limit_storage_url.startswith(("redis://", "rediss://", "redis+unix://")):
        options = {"socket_timeout": STORAGE_TIMEOUT_S, "socket_connect_timeout": STORAGE_TIMEOUT_S}
    limiter = Limiter(
        subject_key,
        app=app,
        enabled=settings.rate_limit_enabled,
        application_limits=[
            ApplicationLimit(
                settings.rate_limit_per_subject, key_function=subject_key, exempt_when=_exempt
            ),
            ApplicationLimit(
                settings.rate_limit_per_org, key_function=org_key, exempt_when=_exempt
            ),
            ApplicationLimit(
                settings.rate_limit_heavy,
                key_function=lambda: "heavy:" + subject_key(),
                exempt_when=lambda: _exempt() or not is_heavy(),
            ),
        ],
        storage_uri=settings.rate_limit_storage_url,
        storage_options=options,
        strategy="fixed-window",
        key_prefix=f"{namespace}:ratelimit",
        headers_enabled=False,  # ours below: the IETF names, reset in seconds
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> Response:
        try:
            limit = limiter.current_limit
            wait = _seconds_to_reset(limit) if limit else 1
        except Exception:  # noqa: BLE001 - the counters could not be read again
            wait = 1
        resp = error_response(
            429,
            f"Too many requests: the limit is {exc.description}. Retry after {wait} seconds.",
            {"rate_limit": [str(exc.description)]},
            headers={"Retry-After": str(wait)},
        )
        return _stamp(resp, limiter)

    @app.after_request
    def _headers(resp: Response) -> Response:
        return _stamp(resp, limiter)

    return limiter


def _seconds_to_reset(limit: RequestLimit) -> int:
    return max(1, math.ceil(limit.window.reset_time - time.time()))


def _stamp(resp: Response, limiter: Limiter) -> Response:
    """RateLimit-* of the budget closest to running out (none for exempt requests, nor when
    the counters cannot be read: headers never turn an answer into an error)."""
    try:
        _add_headers(resp, limiter, limiter.current_limits)
    except Exception:  # noqa: BLE001 - storage timeout, no limiter context, ...
        log.debug("rate limit headers left out", exc_info=True)
    return resp


def _windows(limiter: Limiter, limits: list[RequestLimit]) -> list[tuple[int, int]]:
    """(remaining, seconds to reset) of each limit. On Redis, one pipelined round trip for all
    of them (a GET and a TTL per counter): flask-limiter reads each limit's window with two
    round trips of its own, four per request, as many as the request's own SQL."""
    strategy = limiter.limiter  # the live one: per-process memory while Redis is down
    storage = strategy.storage
    if isinstance(storage, RedisStorage) and isinstance(strategy, FixedWindowRateLimiter):
        pipe = storage.get_connection(True).pipeline(transaction=False)  # type: ignore[attr-defined]
        for lim in limits:
            key = storage.prefixed_key(lim.key)
            pipe.get(key)
            pipe.ttl(key)
        values = pipe.execute()
        return [
            (max(0, lim.limit.amount - int(count or 0)), max(1, math.ceil(max(ttl, 0))))
            for lim, count, ttl in zip(limits, values[::2], values[1::2], strict=True)
        ]
    return [(lim.remaining, _seconds_to_reset(lim)) for lim in limits]


def _add_headers(resp: Response, limiter: Limiter, limits: list[RequestLimit]) -> None:
    if not limits:
        return
    windows = _windows(limiter, limits)
    (remaining, reset), tightest = min(zip(windows, limits, strict=True), key=lambda pair: pair[0])
    resp.headers["RateLimit-Limit"] = str(tightest.limit.amount)
    resp.headers["RateLimit-Remaining"] = str(max(remaining, 0))
    resp.headers["RateLimit-Reset"] = str(reset)
    resp.headers["RateLimit-Policy"] = ", ".join(
        f"{lim.limit.amount};w={lim.limit.get_expiry()}" for lim in limits
    )
