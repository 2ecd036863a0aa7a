"""JWT bearer auth and the one declarative permission check: `@requires(scope, module=...)`.

Tokens carry `sub` (user id, a string), `org` (organization id) and `scopes` (list of strings).
HS256 with a shared secret by default; RS256 with a public key for an external identity provider.
Every failure is a 401/403 in the API's error shape, never flask-jwt-extended's `{"msg"}` or 422.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from types import MappingProxyType
from typing import Any, TypeVar, cast

import jwt as pyjwt
from flask import Flask, current_app, g, has_request_context
from flask_jwt_extended import (
    JWTManager,
    decode_token,
    get_current_user,
    get_jwt,
    verify_jwt_in_request,
)
from flask_jwt_extended import view_decorators as _jwt_views
from flask_jwt_extended.config import config as jwt_config
from flask_jwt_extended.default_callbacks import default_decode_key_callback
from flask_jwt_extended.exceptions import (
    JWTExtendedException,
    NoAuthorizationError,
    UserClaimsVerificationError,
    UserLookupError,
)
from flask_jwt_extended.tokens import _decode_jwt
from jwt import ExpiredSignatureError

from infra import context
from infra.errors import Forbidden, Unauthorized
from infra.settings import Settings
from tenancy import org_cache
from tenancy.models import Organization
from tenancy.request import request_session

SCOPES = (
    "certifications:read",
    "certifications:create",
    "certifications:update",
    "certifications:delete",
    "certifications:review",
    "directory:read",
    "directory:write",
    "org:admin",
    "platform:admin",
    "self",
)
PLATFORM_SCOPE = "platform:admin"
# A worker's own token: only the endpoints that declare it (/me), whatever else it carries;
# so it is no part of the tenant scopes an admin token gets by default.
SELF_SCOPE = "self"
TENANT_SCOPES = tuple(s for s in SCOPES if s not in (PLATFORM_SCOPE, SELF_SCOPE))
_MAX_LIFETIME_KEY = "CERTS_JWT_MAX_LIFETIME_SECONDS"

_DECODED = "certs_decoded_jwt"


class _OnceJWTManager(JWTManager):
    """Decodes a request's token once: the rate limiter (`api.rate_limits`) reads its claims
    before the view, and `requires` (maybe twice, with `authenticate`) verifies it again; each
    decode parses the token three times and checks its signature. The verified claims of the
    last token decoded are kept for the rest of the request (a failure is never kept: it
    raises again)."""

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict[str, Any]:
        key = (encoded_token, csrf_value, allow_expired)
        if has_request_context():
            kept = g.get(_DECODED)
            if kept is not None and kept[0] == key:
                return dict(kept[1])
        claims = self._decode_once(encoded_token, csrf_value, allow_expired)
        if has_request_context():
            setattr(g, _DECODED, (key, dict(claims)))
        return claims

    def _decode_once(
        self, encoded_token: str, csrf_value: Any, allow_expired: bool
    ) -> dict[str, Any]:
        """One verified decode. flask-jwt-extended parses the token twice more first, without
        verifying, to hand claims and header to a decode-key callback; ours is the default
        (the configured key, whatever the token), so those parses only cost (PyJWT checks a
        token's base64 character by character: ~15% of a small request's CPU), and a token this
        process verified before is not verified again (`_verified`). An expired token goes
        the library's way, which attaches header and claims to the error."""
        if self._decode_key_callback is not default_decode_key_callback:
            return dict(super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired))
        inputs = _verification_inputs()
        try:
            claims = _verified(encoded_token, csrf_value, allow_expired, *inputs)
        except ExpiredSignatureError:
            return dict(super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired))
        if not allow_expired and _expired(claims, inputs):
            # Verified earlier, expired since: the library's way, as a first decode would go.
            return dict(super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired))
        return dict(claims)


def token_identity(encoded_token: str) -> tuple[str | None, str] | None:
    """`(org, sub)` of a bearer token that verifies under the app's configuration and has not
    expired, else None: whose budget the rate limiter counts a request in, before `requires`
    verifies the token in full. The verification is the view's (`_verified`, kept per
    token); the claims' shapes and the organization are the view's to judge."""
    try:
        if jwt_manager._decode_key_callback is not default_decode_key_callback:
            claims: Any = decode_token(encoded_token)
        else:
            inputs = _verification_inputs()
            claims = _verified(encoded_token, None, False, *inputs)
            if _expired(claims, inputs):
                return None
        org, sub = claims.get("org"), claims["sub"]
    except Exception:  # noqa: BLE001 - any token that does not verify
        return None
    return (str(org) if org else None), str(sub)


def _expired(claims: Mapping[str, Any], inputs: tuple[Any, ...]) -> bool:
    """Kept claims whose `exp` has passed since they verified (`_verification_inputs`' leeway)."""
    exp = claims.get("exp")
    leeway = inputs[5].total_seconds() if isinstance(inputs[5], timedelta) else inputs[5]
    return isinstance(exp, int | float) and exp <= time.time() - leeway


_INPUTS = "certs.jwt_verification_inputs"


def _verification_inputs() -> tuple[Any, ...]:
    """What a verification depends on, read from the app's configuration once (`init_auth` set
    it; flask-jwt-extended's properties read the config through the app proxy every time): key,
    algorithms, audience, issuer, identity claim, leeway, verify_sub (`_verified`'s order)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    inputs: tuple[Any, ...] | None = app.extensions.get(_INPUTS)
    if inputs is None:
        audience = jwt_config.decode_audience
        inputs = (
            jwt_config.decode_key,
            tuple(jwt_config.decode_algorithms),
            audience if isinstance(audience, str | None) else tuple(audience),
            jwt_config.decode_issuer,
            jwt_config.identity_claim_key,
            jwt_config.leeway,
            jwt_config.verify_sub,
        )
        app.extensions[_INPUTS] = inputs
    return inputs


@functools.lru_cache(maxsize=4096)
def _verified(
    encoded_token: str,
    csrf_value: Any,
    allow_expired: bool,
    key: Any,
    algorithms: tuple[str, ...],
    audience: str | tuple[str, ...] | None,
    issuer: Any,
    identity_claim_key: str,
    leeway: Any,
    verify_sub: bool,
) -> MappingProxyType[str, Any]:
    """The claims of a token whose signature and claims verified, kept per process.

    An integration sends the same token for an hour: its signature is checked once, not on
    every request (PyJWT's decode and checks were ~4% of a small request's CPU). Only a
    successful verification is kept (a failure raises, and `lru_cache` keeps no exception);
    the key is the token's exact text together with every input of the verification (the
    key, algorithms, audience, issuer...), so a token verified under one configuration is
    never taken for verified under another; `exp` is judged again on every use by the
    caller (`nbf` and `iat` held when it verified and time only moves forward). Everything
    else (revocation of the org, claim shapes, lifetime) runs per request as before."""
    return MappingProxyType(
        _decode_jwt(
            algorithms=list(algorithms),
            allow_expired=allow_expired,
            audience=cast(Any, audience),  # None: no audience is checked
            csrf_value=csrf_value,
            encoded_token=encoded_token,
            identity_claim_key=identity_claim_key,
            issuer=issuer,
            leeway=leeway,
            secret=key,
            verify_aud=audience is not None,
            verify_sub=verify_sub,
        )
    )


jwt_manager = _OnceJWTManager()


@functools.lru_cache(maxsize=4096)
def _token_header(encoded_token: str) -> MappingProxyType[str, Any]:
    """A token's header, parsed once per token text (kept per process, as `_verified`)."""
    return MappingProxyType(_library_token_header(encoded_token))


def _kept_token_header(encoded_token: str) -> dict[str, Any]:
    return dict(_token_header(encoded_token))


# flask-jwt-extended's `verify_jwt_in_request` parses the token's header again, unverified,
# after the decode, to hand it to the callbacks: PyJWT checks the base64 character by character
# in a generator, ~50 us of a worker's ~950 us CPU on GET /org (measured under gunicorn). The
# header is a function of the token's text alone, so the parse is kept per token
# (`_token_header`). flask-jwt-extended offers no hook for it: the name its module calls is
# replaced, once, at import (flask-jwt-extended 4.7; tests/tenancy/test_auth_cache.py fails if
# the library stops calling it, or calls it per request again).
_library_token_header = _jwt_views.get_unverified_jwt_headers  # type: ignore[attr-defined]
_jwt_views.get_unverified_jwt_headers = _kept_token_header  # type: ignore[attr-defined]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class PlatformOperator:
    """A token without an organization, allowed only `platform:admin` endpoints."""

    sub: str


def init_auth(app: Flask, settings: Settings) -> None:
    app.config.update(
        JWT_TOKEN_LOCATION=["headers"],
        JWT_IDENTITY_CLAIM="sub",
        JWT_ALGORITHM=settings.jwt_algorithm,
        # Only the configured algorithm verifies: no "none", no HS256 signed with the public key.
        JWT_DECODE_ALGORITHMS=[settings.jwt_algorithm],
        JWT_SECRET_KEY=settings.jwt_secret_key,
        JWT_PUBLIC_KEY=settings.jwt_public_key,
        JWT_PRIVATE_KEY=settings.jwt_private_key,
        JWT_ERROR_MESSAGE_KEY="message",
        JWT_DECODE_LEEWAY=0,
    )
    app.config[_MAX_LIFETIME_KEY] = settings.jwt_max_lifetime_seconds
    jwt_manager.init_app(app)
    app.teardown_request(lambda _exc: context.set_actor(None))


def authenticate() -> None:
    """Verify the request's bearer token now and set its tenant (401 if it is wrong), for
    request hooks that must know the organization before the view runs (`api.semantics`)."""
    _verify()


def _verify() -> None:
    """Verify the bearer token; every way it can be wrong becomes one 401."""
    try:
        verify_jwt_in_request()
    except ExpiredSignatureError as exc:
        raise Unauthorized("Token has expired.") from exc
    except UserLookupError as exc:
        raise Unauthorized("Unknown organization.") from exc
    except UserClaimsVerificationError as exc:
        raise Unauthorized("Token claims are invalid.") from exc
    except NoAuthorizationError as exc:
        raise Unauthorized("Missing bearer token.") from exc
    except (JWTExtendedException, pyjwt.PyJWTError, ValueError, KeyError) as exc:
        raise Unauthorized("Invalid token.") from exc


@jwt_manager.token_verification_loader
def _claims_are_well_formed(_header: dict[str, Any], claims: dict[str, Any]) -> bool:
    """Claim types and combinations (False → 401 "Token claims are invalid.").

    Raises `Unauthorized` with its own message for a lifetime beyond the maximum and for
    `platform:admin` on a token for an organization, so the operator sees why.
    """
    scopes = claims.get("scopes")
    if not isinstance(claims.get("exp"), int | float):
        return False  # a hosted API accepts no token that never expires
    _refuse_long_lived(claims)
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        return False
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        return False
    org = claims.get("org")
    if org is None:
        return PLATFORM_SCOPE in scopes
    if PLATFORM_SCOPE in scopes:
        # An operator scope on a tenant token would let any org admin whose IdP adds it
        # create organizations: platform:admin is valid only on tokens without an org.
        raise Unauthorized(f"{PLATFORM_SCOPE} is not valid on a token for an organization.")
    try:
        uuid.UUID(str(org))
    except ValueError:
        return False
    return isinstance(org, str)


def _refuse_long_lived(claims: dict[str, Any]) -> None:
    """`exp - iat` and `exp - now` must both stay within JWT_MAX_LIFETIME_SECONDS.

    Without `iat` only `exp - now` can be judged; with it, a back-dated `iat` cannot hide a
    long lifetime either. PyJWT has already checked `iat` is a number when present.
    """
    limit = int(current_app.config[_MAX_LIFETIME_KEY])
    exp = float(claims["exp"])
    iat = claims.get("iat")
    now = datetime.now(UTC).timestamp()
    too_long = exp - now > limit or (isinstance(iat, int | float) and exp - float(iat) > limit)
    if too_long:
        raise Unauthorized(f"Token lifetime exceeds the maximum of {limit} seconds.")


@jwt_manager.user_lookup_loader
def _load_organization(_header: dict[str, Any], claims: dict[str, Any]) -> Any:
    """The token's org becomes the tenant for the rest of the request."""
    if claims.get("org") is None:
        return PlatformOperator(sub=claims["sub"])
    org_id = uuid.UUID(claims["org"])
    context.set_current_org(org_id)  # before the session begins: RLS reads it at BEGIN
    kept = org_cache.cached(org_id)  # a few seconds per process, dropped on change
    if kept is not None:
        return kept
    org = request_session().get(Organization, org_id)
    if org is not None:
        org_cache.keep(org)
    return org


def current_organization() -> Organization:
    org = get_current_user()
    if not isinstance(org, Organization):
        raise Forbidden("This endpoint needs a token for an organization.")
    return org


def current_subject() -> str:
    return str(get_jwt()["sub"])


def require_scope(scope: str) -> None:
    """Inside an endpoint: 403 unless the token also has `scope` (for a request whose body
    asks for more than the endpoint's declared scope, e.g. a bulk `assign`)."""
    if scope not in get_jwt().get("scopes", []):
        raise Forbidden(f"Missing scope {scope}.", errors={"scope": [scope]})


def requires(
    scope: str | tuple[str, ...] | None = None, *, module: str | None = None, tenant: bool = True
) -> Callable[[F], F]:
    """Declare what an endpoint needs: a valid token, optionally a scope and an enabled module.

    `scope` may be a tuple meaning any one of them. Missing scope → 403 naming it; module
    off → 403 with code `module_disabled`. Also documents the bearer requirement and the
    401/403 answers in the OpenAPI operation.
    """
    needed = [scope] if isinstance(scope, str) else list(scope or [])

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _verify()
            principal = get_current_user()
            scopes = get_jwt().get("scopes", [])
            if tenant and not isinstance(principal, Organization):
                raise Forbidden("This endpoint needs a token for an organization.")
            if needed and not any(s in scopes for s in needed):
                raise Forbidden(f"Missing scope {' or '.join(needed)}.", errors={"scope": needed})
            if SELF_SCOPE in scopes and SELF_SCOPE not in needed:
                raise Forbidden(
                    "A self-service token (scope `self`) may only use the /me endpoints.",
                    errors={"scope": [SELF_SCOPE]},
                )
            if module and not principal.has_module(module):
                raise Forbidden(
                    f"The {module.upper()} module is not enabled for this organization.",
                    code_name="module_disabled",
                    errors={"module": [module]},
                )
            context.set_actor(str(get_jwt()["sub"]))  # the audit trail's "who"
            if isinstance(principal, PlatformOperator):
                with context.platform():  # explicit: no tenant, platform tables only
                    return fn(*args, **kwargs)
            return fn(*args, **kwargs)

        _document(wrapper, needed)
        return cast(F, wrapper)

    return decorator


def _document(fn: Any, needed: list[str]) -> None:
    from flask_smorest.utils import deepupdate

    apidoc = fn.__dict__.setdefault("_apidoc", {})
    names = " or ".join(f"`{s}`" for s in needed)
    description = f"Requires scope {names}." if needed else "Requires a valid token."
    doc = {
        "security": [{"bearerAuth": []}],
        "responses": {
            "401": "UNAUTHORIZED",
            "403": "FORBIDDEN",
        },
        "description": description,
    }
    apidoc["manual_doc"] = deepupdate(dict(apidoc.get("manual_doc", {})), doc)


def issue_token(
    settings: Settings,
    *,
    sub: str,
    org_id: str | None,
    scopes: list[str],
    ttl: int = 3600,
    now: datetime | None = None,
) -> str:
    """A signed access token (CLI, demo, tests); production IdPs issue their own.

    Refuses (ValueError) what the API would refuse: `platform:admin` with an organization, a
    lifetime beyond `settings.jwt_max_lifetime_seconds`.
    """
    if org_id is not None and PLATFORM_SCOPE in scopes:
        raise ValueError(f"{PLATFORM_SCOPE} is valid only on a token without an organization")
    if ttl > settings.jwt_max_lifetime_seconds:
        raise ValueError(
            f"a token may live at most {settings.jwt_max_lifetime_seconds} seconds "
            "(JWT_MAX_LIFETIME_SECONDS)"
        )
    now = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "org": org_id,
        "scopes": scopes,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": uuid.uuid4().hex,
        "type": "access",
        "fresh": False,
    }
    if settings.jwt_algorithm == "RS256":
        if not settings.jwt_private_key:
            raise RuntimeError("RS256 tokens are issued by your identity provider (no private key)")
        return pyjwt.encode(claims, settings.jwt_private_key, algorithm="RS256")
    return pyjwt.encode(claims, settings.jwt_secret_key, algorithm="HS256")
