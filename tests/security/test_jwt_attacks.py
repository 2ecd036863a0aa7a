"""Token attacks on every operation, and the RS256 configuration (algorithm confusion).

tests/tenancy/test_auth.py covers each bad token once against /org; here every bad token is
sent to every documented operation (401, never 200/403/500), and an RS256 app is attacked
with an HS256 token whose HMAC secret is the public key PEM.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.security import support

OPS = support.operations()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _hs_raw(claims: dict[str, Any], secret: bytes, alg: str = "HS256", **header: Any) -> str:
    """HMAC tokens by hand: PyJWT refuses a PEM as an HMAC secret, an attacker's tool does not."""
    signing_input = _unsigned({"alg": alg, "typ": "JWT", **header}, claims)
    digest = hashlib.sha512 if alg == "HS512" else hashlib.sha256
    sig = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(sig)}"


def _claims(org_id: str | None, **over: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "sub": "attacker",
        "org": org_id,
        "scopes": list(support.TENANT_SCOPES),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not ...}


def _bad_tokens(settings: Any, org_id: str) -> dict[str, str]:
    secret = settings.jwt_secret_key
    hs = lambda c, **kw: pyjwt.encode(c, secret, algorithm="HS256", **kw)  # noqa: E731
    past = int((datetime.now(UTC) - timedelta(hours=2)).timestamp())
    future = int((datetime.now(UTC) + timedelta(hours=2)).timestamp())
    none_body = _unsigned({"alg": "none", "typ": "JWT"}, _claims(org_id))
    now = int(datetime.now(UTC).timestamp())
    over_max = settings.jwt_max_lifetime_seconds + 60
    return {
        "expired": hs(_claims(org_id, iat=past - 60, nbf=past - 60, exp=past)),
        "not-yet-valid": hs(_claims(org_id, nbf=future, exp=future + 60)),
        "bad-signature": pyjwt.encode(_claims(org_id), "x" * 40, algorithm="HS256"),
        "alg-none": none_body + ".",
        "alg-None": _unsigned({"alg": "None"}, _claims(org_id)) + ".",
        "alg-NONE-with-sig": none_body + "." + _b64(b"sig"),
        "hs512-right-secret": _hs_raw(_claims(org_id), secret.encode(), "HS512"),
        "missing-sub": hs(_claims(org_id, sub=...)),
        "missing-exp": hs(_claims(org_id, exp=...)),
        "missing-scopes": hs(_claims(org_id, scopes=...)),
        "int-sub": _hs_raw(_claims(org_id, sub=7), secret.encode()),
        "list-sub": _hs_raw(_claims(org_id, sub=["a"]), secret.encode()),
        "string-exp": _hs_raw(_claims(org_id, exp="9999999999"), secret.encode()),
        "unknown-org": hs(_claims(str(uuid.uuid4()))),
        "org-not-uuid": hs(_claims("../../etc")),
        # Signed with the empty key that `kid: /dev/null` would select if kid chose keys.
        "kid-dev-null": _hs_raw(_claims(org_id), b"", kid="../../../dev/null", jku="http://x"),
        # platform:admin belongs to operator tokens (no org) only.
        "tenant-token-with-platform-admin": hs(
            _claims(org_id, scopes=[*support.TENANT_SCOPES, "platform:admin"])
        ),
        # Lifetime beyond JWT_MAX_LIFETIME_SECONDS: by exp - iat, or by exp alone without iat.
        "exp-1e20": _hs_raw(_claims(org_id, exp=1e20), secret.encode()),
        "lifetime-over-max": hs(_claims(org_id, exp=now + over_max)),
        "lifetime-over-max-backdated-iat": hs(_claims(org_id, iat=now - over_max, exp=now + 30)),
        "no-iat-exp-beyond-max": hs(_claims(org_id, iat=..., exp=now + over_max)),
        "platform-lifetime-over-max": hs(
            _claims(None, scopes=["platform:admin"], exp=now + over_max)
        ),
        "empty": "",
        "garbage": "a.b.c",
        # In process the app judges it (401); through gunicorn a header line over 8,190 bytes
        # never reaches the app: a JSON 431 (tests/concurrency/test_input_limits.py).
        "huge": "a" * 20000,
    }


@pytest.fixture
def target(make_org, make_world):
    org = make_org()
    return org, make_world(org)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.id)
def test_every_bad_token_is_401_on_every_operation(op, target, app, settings):
    org, world = target
    client = app.test_client()
    path = "/api/v1" + support.build_path(op, world)
    body = support.sample_body(op, world)
    before = support.snapshot(org.id)
    for name, token in _bad_tokens(settings, str(org.id)).items():
        kw: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
        kw["query_string"] = support.required_query(op, world)
        if body is not None:
            kw["json"] = body
        resp = getattr(client, op.method)(path, **kw)
        assert resp.status_code == 401, f"{op.id} with {name} token: {resp.status_code}"
        payload = resp.get_json()
        assert payload["code"] == 401, payload
        assert "msg" not in payload
    assert support.snapshot(org.id) == before


# --- RS256: an external identity provider's tokens -------------------------------------------


@pytest.fixture(scope="module")
def rsa_keys():
    def pair() -> tuple[str, str]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return private, public

    return pair(), pair()


@pytest.fixture
def rs256_app(settings, runtime, rsa_keys):
    from api import create_app

    (private, public), _other = rsa_keys
    rs = dataclasses.replace(
        settings, jwt_algorithm="RS256", jwt_public_key=public, jwt_private_key=private
    )
    return create_app(rs, runtime), rs  # the suite's database and broker, other auth


def _get(app: Any, token: str, path: str = "/api/v1/org") -> Any:
    return app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def test_rs256_accepts_the_identity_providers_token(rs256_app, org):
    app, rs = rs256_app
    token = pyjwt.encode(_claims(str(org.id)), rs.jwt_private_key, algorithm="RS256")
    resp = _get(app, token)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["id"] == str(org.id)


@pytest.mark.parametrize(
    "attack",
    [
        "hs256-signed-with-public-key",
        "hs256-signed-with-public-key-stripped",
        "hs256-with-shared-secret",
        "rs256-other-key",
        "alg-none",
        "rs256-expired",
        "rs256-unknown-org",
    ],
)
def test_rs256_attacks_are_401(rs256_app, rsa_keys, org, attack):
    app, rs = rs256_app
    _mine, (other_private, _other_public) = rsa_keys
    claims = _claims(str(org.id))
    public = rs.jwt_public_key
    if attack == "hs256-signed-with-public-key":
        token = _hs_raw(claims, public.encode())
    elif attack == "hs256-signed-with-public-key-stripped":
        token = _hs_raw(claims, public.strip().encode())
    elif attack == "hs256-with-shared-secret":
        token = pyjwt.encode(claims, rs.jwt_secret_key, algorithm="HS256")
    elif attack == "rs256-other-key":
        token = pyjwt.encode(claims, other_private, algorithm="RS256")
    elif attack == "alg-none":
        token = _unsigned({"alg": "none"}, claims) + "."
    elif attack == "rs256-expired":
        past = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
        token = pyjwt.encode(
            _claims(str(org.id), iat=past, nbf=past, exp=past + 1), rs.jwt_private_key, "RS256"
        )
    else:
        token = pyjwt.encode(_claims(str(uuid.uuid4())), rs.jwt_private_key, algorithm="RS256")
    for op in [o for o in OPS if o.method == "get" and not o.path_params]:
        resp = _get(app, token, "/api/v1" + op.path)
        assert resp.status_code == 401, f"{attack} on {op.id}: {resp.status_code}"
        assert resp.get_json()["code"] == 401
