"""Rate limits: every API request counted per token subject and per organization, and the heavy
ones (bulk writes, CSV exports) in a smaller budget of their own; fixed windows in the `limits`
notation and semantics (`limits` parses the budgets and keeps the in-process counters).

Counters live in `RATE_LIMIT_STORAGE_URL` (Redis by default when `REDIS_URL` is set, so every
gunicorn worker and replica shares them; in-process memory on the embedded default). On Redis a
process leases a budget's units a few at a time: one Lua script grants each counter whose lease
ran out up to 1% of its budget (at most `LEASE_MAX` units, and never past the limit), adds the
grant to the shared count and answers count, time to reset and grant; the process spends the
units locally until they or the window run out. No request is ever served past a limit (every
unit served was counted in Redis within it); what a lease costs is that a process may hold up
to 1% of a budget unspent while another is refused, and that `RateLimit-Remaining` is this
process's view. A budget under 100 per window leases one unit: counted request by request.
(Flask-Limiter, used before, spent one `EVALSHA` per counter and the headers a third round
trip; one round trip per request was still a sixth of a small request's cost under load:
docs/decisions.md.)
A refusal is a 429 in the one error shape with `Retry-After`; every counted answer carries
`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds) and `RateLimit-Policy`
for the budget closest to running out (IETF draft "RateLimit header fields for HTTP").

Keys come from the bearer token, verified (signature and expiry) but without a database
lookup: `sub:<org>:<sub>` and `org:<org>`. A request without a valid token is counted by its
client address, so invalid tokens cannot mint fresh budgets. A storage outage never fails a
request: the counters fall back to per-process memory and try the storage again after
`RETRY_STORAGE_S`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, Response, g, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage

from api.errors import error_response
from infra.settings import Settings
from tenancy.auth import token_identity

log = logging.getLogger("certs.api")

# A view class attribute: True → its requests also count against RATE_LIMIT_HEAVY.
HEAVY = "heavy_rate_limit"
# Redis must answer a counter update this fast, or the request is counted in memory.
STORAGE_TIMEOUT_S = 0.5
# After a storage failure, count in memory this long before asking the storage again (a hung
# Redis then costs one request per worker a timeout, not every request).
RETRY_STORAGE_S = 5.0

# Leases: a process takes a budget's units from Redis a few at a time and spends them locally,
# so a busy token does not cost a round trip per request. A lease is at most 1/LEASE_SHARE of
# its budget (and LEASE_MAX units); a budget under LEASE_SHARE per window leases one unit, so
# small budgets are counted request by request, exactly as before.
LEASE_SHARE = 100
LEASE_MAX = 50
LEASES_KEPT = 10_000  # per process; beyond, the table starts afresh (leftover units go unused)
# Two grants whose windows end this close together are of one window (windows are >= 1 s).
SAME_WINDOW_S = 0.5

# For each counter (KEYS[i]; ARGV: its window in seconds, its limit, the units wanted), grant
# what is wanted within the limit and add it to the count; a grant of 0 (the budget is spent)
# still counts the refused request. A counter without an expiry (new, or one whose expiry was
# lost) gets its window. Answers count after, milliseconds to reset, units granted.
HIT_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[3 * i - 2])
  local limit = tonumber(ARGV[3 * i - 1])
  local want = tonumber(ARGV[3 * i])
  local grant = math.max(0, math.min(want, limit - tonumber(redis.call('GET', key) or '0')))
  local count = redis.call('INCRBY', key, math.max(grant, 1))
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    ttl = window * 1000
    redis.call('PEXPIRE', key, ttl)
  end
  out[3 * i - 2] = count
  out[3 * i - 1] = ttl
  out[3 * i] = grant
end
return out
"""


def _identity() -> tuple[str | None, str | None]:
    """(org, sub) of a valid bearer token, else (None, None); once per request."""
    if "rate_identity" not in g:
        header = request.headers.get("Authorization", "")
        found = None
        if header.startswith("Bearer "):
            found = token_identity(header.removeprefix("Bearer ").strip())
        g.rate_identity = found or (None, None)
    identity: tuple[str | None, str | None] = g.rate_identity
    return identity


def _address() -> str:
    return request.remote_addr or "unknown"


def subject_key() -> str:
    org, sub = _identity()
    return f"sub:{org or '-'}:{sub}" if sub else f"addr:{_address()}"


def heavy_key() -> str:
    return "heavy:" + subject_key()


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
    if request.method != "GET":
        return False
    # (the query is parsed only when it may name a format)
    if b"format=" in request.query_string and request.args.get("format") == "csv":
        return True
    # Parsing Accept costs every request; only a header naming CSV can prefer it.
    accept = request.headers.get("Accept", "")
    return "text/csv" in accept.lower() and request.accept_mimetypes.best == "text/csv"


def _exempt() -> bool:
    """Only the API is counted: not probes, metrics, the docs or the OpenAPI document."""
    path = request.path
    return (
        not path.startswith(_COUNTED)
        or path.startswith(_NOT_COUNTED)
        or request.method == "OPTIONS"
    )


_COUNTED = "/api/v1/"  # api.API_PREFIX (a test holds them equal; api imports this module)
_NOT_COUNTED = tuple(_COUNTED + name for name in ("docs", "redoc", "openapi"))


@dataclass(frozen=True)
class Budget:
    """One configured budget: its windows, whose requests it counts, and under which key."""

    items: tuple[RateLimitItem, ...]
    key: Callable[[], str]
    applies: Callable[[], bool]


@dataclass(frozen=True)
class Spent:
    """One counter after this request: its window, and what the storage answered."""

    item: RateLimitItem
    count: int
    reset: int  # seconds until the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.item.amount - self.count)

    @property
    def refused(self) -> bool:
        return self.count > self.item.amount


def lease_size(item: RateLimitItem) -> int:
    """Units of `item` a process takes from Redis at once."""
    return max(1, min(LEASE_MAX, item.amount // LEASE_SHARE))


@dataclass
class Lease:
    """Units of one counter this process took from Redis and has not spent yet."""

    left: int
    count: int  # the counter in Redis when they were granted (the grant included)
    ends: float  # monotonic time: the counter's window ends no earlier


class Counters:
    """Fixed-window counters in Redis (leased to this process a few units at a time) or in
    process memory (the embedded default, and the fallback while Redis fails)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.memory = MemoryStorage()
        self.script: Any = None
        self.leases: dict[str, Lease] = {}
        self.lock = threading.Lock()
        self.retry_at = 0.0
        if url.startswith(("redis://", "rediss://", "redis+unix://")):
            client = redis.Redis.from_url(
                url.replace("redis+unix://", "unix://", 1),
                socket_timeout=STORAGE_TIMEOUT_S,
                socket_connect_timeout=STORAGE_TIMEOUT_S,
            )
            self.script = client.register_script(HIT_SCRIPT)

    def hit(self, counters: list[tuple[RateLimitItem, str]]) -> list[Spent]:
        keys = [item.key_for(self.prefix, key) for item, key in counters]
        if self.script is not None and time.monotonic() >= self.retry_at:
            try:
                return self._leased(counters, keys)
            except redis.RedisError:
                log.warning("rate-limit counters unreachable: counting in memory", exc_info=True)
                self.retry_at = time.monotonic() + RETRY_STORAGE_S
        return [self._in_memory(item, key) for (item, _), key in zip(counters, keys, strict=True)]

    def _leased(self, counters: list[tuple[RateLimitItem, str]], keys: list[str]) -> list[Spent]:
        """Spend one unit of each counter: from this process's lease while it lasts, else
        from Redis (one script call for every counter whose lease ran out)."""
        now = time.monotonic()
        spent: list[Spent | None] = [None] * len(keys)
        ask = []
        with self.lock:
            for i, key in enumerate(keys):
                lease = self.leases.get(key)
                if lease is not None and lease.left > 0 and now < lease.ends:
                    lease.left -= 1
                    reset = max(1, math.ceil(lease.ends - now))
                    spent[i] = Spent(counters[i][0], lease.count - lease.left, reset)
                else:
                    ask.append(i)
        if ask:
            args: list[int] = []
            for i in ask:
                item = counters[i][0]
                args += [item.get_expiry(), item.amount, lease_size(item)]
            flat = self.script(keys=[keys[i] for i in ask], args=args)
            with self.lock:
                if len(self.leases) >= LEASES_KEPT:
                    self.leases.clear()
                for i, count, ttl_ms, grant in zip(
                    ask, flat[::3], flat[1::3], flat[2::3], strict=True
                ):
                    item = counters[i][0]
                    ends = now + int(ttl_ms) / 1000  # no later than the window at Redis
                    served = self._granted(keys[i], int(count), int(grant), ends)
                    spent[i] = Spent(item, served, max(1, math.ceil(int(ttl_ms) / 1000)))
        return [s for s in spent if s is not None]

    def _granted(self, key: str, count: int, grant: int, ends: float) -> int:
        """Keep what Redis granted (the lock held) and answer this request's count: over the
        limit when it is refused."""
        # Another thread may have stored a lease of this window meanwhile: its units were
        # counted, so keep them rather than overwrite them.
        held = self.leases.get(key)
        carried = held.left if held is not None and abs(held.ends - ends) < SAME_WINDOW_S else 0
        if grant == 0 and held is not None and carried > 0:
            held.left -= 1  # Redis is spent, but this process still holds units: spend one
            if held.left == 0:
                del self.leases[key]
            return held.count - held.left
        left = carried + max(grant - 1, 0)
        if left > 0:  # the newer count of the two grants, whichever Redis answered last
            latest = max(count, held.count) if held is not None and carried else count
            self.leases[key] = Lease(left=left, count=latest, ends=ends)
        else:
            self.leases.pop(key, None)
        return count - (grant - 1) if grant else count

    def _in_memory(self, item: RateLimitItem, key: str) -> Spent:
        count = self.memory.incr(key, item.get_expiry())
        reset = max(1, math.ceil(self.memory.get_expiry(key) - time.time()))
        return Spent(item, count, reset)


def init_rate_limits(app: Flask, settings: Settings) -> Counters | None:
    if not settings.rate_limit_enabled:
        return None
    counters = Counters(settings.rate_limit_storage_url, f"{settings.redis_namespace}:ratelimit")
    budgets = (
        Budget(tuple(parse_many(settings.rate_limit_per_subject)), subject_key, _always),
        Budget(tuple(parse_many(settings.rate_limit_per_org)), org_key, _always),
        Budget(tuple(parse_many(settings.rate_limit_heavy)), heavy_key, is_heavy),
    )

    @app.before_request
    def _count() -> Response | None:
        if _exempt():
            return None
        spending = [
            (item, key)
            for budget in budgets
            if budget.applies()
            for key in (budget.key(),)
            for item in budget.items
        ]
        spent = counters.hit(spending)
        g.rate_limits = spent
        refused = [s for s in spent if s.refused]
        if not refused:
            return None
        worst = max(refused, key=lambda s: s.reset)
        return error_response(
            429,
            f"Too many requests: the limit is {worst.item}. Retry after {worst.reset} seconds.",
            {"rate_limit": [str(worst.item)]},
            headers={"Retry-After": str(worst.reset)},
        )

    @app.after_request
    def _headers(resp: Response) -> Response:
        spent: list[Spent] | None = g.get("rate_limits")
        if spent:
            tightest = min(spent, key=lambda s: s.remaining)
            resp.headers["RateLimit-Limit"] = str(tightest.item.amount)
            resp.headers["RateLimit-Remaining"] = str(tightest.remaining)
            resp.headers["RateLimit-Reset"] = str(tightest.reset)
            resp.headers["RateLimit-Policy"] = ", ".join(
                f"{s.item.amount};w={s.item.get_expiry()}" for s in spent
            )
        return resp

    return counters


def _always() -> bool:
    return True
