"""Every bad token is a JSON 401; a missing scope or module is a JSON 403 naming it."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
from click.testing import CliRunner
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from cli.main import main
from infra import context
from infra import database as db
from tenancy.auth import issue_token, requires
from tenancy.models import Organization
from tests.support.suite import CLI_ENV


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _assert_401(resp) -> None:
    assert resp.status_code == 401, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["code"] == 401
    assert body["status"] == "Unauthorized"
    assert body["message"]
    assert "msg" not in body


def test_missing_token_is_401(app):
    _assert_401(app.test_client().get("/api/v1/org"))


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer not.a.jwt", "Basic abc", "Bearer a.b.c", "Token xyz"],
)
def test_malformed_headers_are_401(app, header):
    _assert_401(app.test_client().get("/api/v1/org", headers={"Authorization": header}))


def _claims(org_id: str, **over):
    now = datetime.now(UTC)
    claims = {
        "sub": "u1",
        "org": org_id,
        "scopes": ["org:admin"],
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(hours=1),
    }
    claims.update(over)
    return claims


def _get(app, token):
    return app.test_client().get("/api/v1/org", headers={"Authorization": f"Bearer {token}"})


def test_valid_token_reads_its_org(app, org, settings):
    token = issue_token(settings, sub="u1", org_id=str(org.id), scopes=[])
    resp = _get(app, token)
    assert resp.status_code == 200
    assert resp.get_json()["id"] == str(org.id)


def test_tampered_token_is_401(app, org, settings):
    token = issue_token(settings, sub="u1", org_id=str(org.id), scopes=["org:admin"])
    header, payload, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["scopes"] = ["platform:admin", "org:admin"]
    _assert_401(_get(app, f"{header}.{_b64(forged)}.{sig}"))


def test_wrong_secret_is_401(app, org):
    token = pyjwt.encode(_claims(str(org.id)), "another-secret-" + "y" * 32, algorithm="HS256")
    _assert_401(_get(app, token))


def test_expired_token_is_401(app, org, settings):
    past = datetime.now(UTC) - timedelta(hours=2)
    token = issue_token(settings, sub="u1", org_id=str(org.id), scopes=[], ttl=60, now=past)
    resp = _get(app, token)
    _assert_401(resp)
    assert "expired" in resp.get_json()["message"].lower()


def test_not_yet_valid_token_is_401(app, org, settings):
    future = datetime.now(UTC) + timedelta(hours=1)
    token = issue_token(settings, sub="u1", org_id=str(org.id), scopes=[], now=future)
    _assert_401(_get(app, token))


def test_a_token_is_verified_once_then_read_from_the_cache(app, org, settings, monkeypatch):
    import tenancy.auth as auth

    calls = []
    real = auth._decode_jwt

    def counting(**kwargs):
        calls.append(kwargs["encoded_token"])
        return real(**kwargs)

    monkeypatch.setattr(auth, "_decode_jwt", counting)
    token = issue_token(settings, sub="u-once", org_id=str(org.id), scopes=[])
    for _ in range(3):
        assert _get(app, token).status_code == 200
    assert calls == [token]
    # One character changed in the signature is another key: verified, and refused.
    forged = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    _assert_401(_get(app, forged))


def test_a_tokens_header_is_parsed_once_per_token(app, org, settings, monkeypatch):
    """flask-jwt-extended parses the header again after the decode; ours is kept per token
    (`tenancy.auth._token_header`). Fails if the library stops calling the name we replace
    (the parse would not be counted) or if it is parsed per request again."""
    import tenancy.auth as auth

    calls = []
    real = auth._library_token_header

    def counting(encoded_token):
        calls.append(encoded_token)
        return real(encoded_token)

    monkeypatch.setattr(auth, "_library_token_header", counting)
    token = issue_token(settings, sub="u-header", org_id=str(org.id), scopes=[])
    for _ in range(3):
        assert _get(app, token).status_code == 200
    assert calls == [token]
    # Each caller gets its own copy: a callback changing it changes no other request's.
    first = auth._kept_token_header(token)
    first["alg"] = "none"
    assert auth._kept_token_header(token)["alg"] == "HS256"


def test_a_verified_token_is_refused_once_it_expires(app, org, settings):
    exp = int(time.time()) + 2
    token = pyjwt.encode(
        _epoch_claims(str(org.id), iat=exp - 60, exp=exp), settings.jwt_secret_key, "HS256"
    )
    assert _get(app, token).status_code == 200  # verified, and kept
    while time.time() <= exp + 0.05:
        time.sleep(0.1)
    resp = _get(app, token)
    _assert_401(resp)
    assert "expired" in resp.get_json()["message"].lower()


def test_a_token_verified_under_one_key_is_not_taken_as_verified_under_another(
    app, org, settings, runtime
):
    from api import create_app

    token = issue_token(settings, sub="u-key", org_id=str(org.id), scopes=[])
    assert _get(app, token).status_code == 200  # verified with the suite's secret, and kept
    other = dataclasses.replace(settings, jwt_secret_key="another-secret-" + "z" * 40)
    _assert_401(_get(create_app(other, runtime), token))


def test_alg_none_is_401(app, org):
    claims = _claims(str(org.id))
    claims = {k: int(v.timestamp()) if isinstance(v, datetime) else v for k, v in claims.items()}
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    _assert_401(_get(app, token))


def test_unknown_org_is_401(app, settings):
    token = issue_token(settings, sub="u1", org_id=str(uuid.uuid4()), scopes=["org:admin"])
    resp = _get(app, token)
    _assert_401(resp)
    assert "organization" in resp.get_json()["message"].lower()


@pytest.mark.parametrize(
    "over",
    [
        {"sub": 42},
        {"sub": ""},
        {"org": "not-a-uuid"},
        {"org": 12345},
        {"scopes": "org:admin"},
        {"scopes": [1, 2]},
        {"org": None},  # only platform operators may omit the org
    ],
)
def test_malformed_claims_are_401(app, org, settings, over):
    token = pyjwt.encode(_claims(str(org.id), **over), settings.jwt_secret_key, algorithm="HS256")
    _assert_401(_get(app, token))


@pytest.mark.parametrize("missing", ["sub", "scopes", "exp", "org"])
def test_missing_claims_are_401(app, org, settings, missing):
    claims = _claims(str(org.id))
    del claims[missing]
    token = pyjwt.encode(claims, settings.jwt_secret_key, algorithm="HS256")
    _assert_401(_get(app, token))


def test_missing_scope_is_403_naming_it(api_for, org):
    resp = api_for(org, scopes=["directory:read"]).patch("/org", json={"name": "X"})
    assert resp.status_code == 403
    body = resp.get_json()
    assert body["code"] == 403
    assert "org:admin" in body["message"]
    assert body["errors"] == {"scope": ["org:admin"]}


def test_platform_endpoint_refuses_tenant_admin(api_for, org):
    resp = api_for(org).post("/organizations", json={"name": "Sneaky"})
    assert resp.status_code == 403
    assert "platform:admin" in resp.get_json()["message"]


# --- platform:admin is an operator scope: never on a token for an organization ----------------


def test_tenant_token_carrying_platform_admin_is_401(app, org, settings):
    """A token for org A with `platform:admin` created organizations (201) and read A (200)."""
    claims = _claims(str(org.id), scopes=["platform:admin", "org:admin"])
    token = pyjwt.encode(claims, settings.jwt_secret_key, algorithm="HS256")
    name = f"Sneaky {uuid.uuid4().hex[:8]}"
    resp = app.test_client().post(
        "/api/v1/organizations",
        json={"name": name},
        headers={"Authorization": f"Bearer {token}"},
    )
    _assert_401(resp)
    assert "platform:admin" in resp.get_json()["message"]
    _assert_401(_get(app, token))
    with context.platform(), db.new_session() as s:
        assert s.scalars(select(Organization.id).where(Organization.name == name)).all() == []


def test_issue_token_refuses_platform_admin_for_an_org(settings, org):
    with pytest.raises(ValueError, match="platform:admin"):
        issue_token(settings, sub="u1", org_id=str(org.id), scopes=["platform:admin"])


def test_cli_refuses_to_mint_a_tenant_token_with_platform_admin(org):
    args = ["token", "issue", "--org", str(org.id), "--sub", "ops"]
    result = CliRunner(env=CLI_ENV).invoke(main, [*args, "--scopes", "platform:admin org:admin"])
    assert result.exit_code == 2, result.output
    assert "platform:admin" in result.output
    ok = CliRunner(env=CLI_ENV).invoke(
        main, ["token", "issue", "--sub", "ops", "--scopes", "platform:admin"]
    )
    assert ok.exit_code == 0, ok.output


# --- a token lives at most JWT_MAX_LIFETIME_SECONDS ------------------------------------------


def _epoch_claims(org_id: str, **over):
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "u1", "org": org_id, "scopes": ["org:admin"], "iat": now, "exp": now + 60}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not ...}


@pytest.mark.parametrize(
    "lifetime",
    ["exp-1e20", "exp-iat-over-max", "backdated-iat", "no-iat-exp-beyond-max"],
)
def test_token_living_longer_than_the_maximum_is_401(app, org, settings, lifetime):
    now, top = int(datetime.now(UTC).timestamp()), settings.jwt_max_lifetime_seconds
    over = {
        "exp-1e20": {"exp": 1e20},
        "exp-iat-over-max": {"exp": now + top + 1},
        "backdated-iat": {"iat": now - top, "exp": now + 60},
        "no-iat-exp-beyond-max": {"iat": ..., "exp": now + top + 60},
    }[lifetime]
    token = pyjwt.encode(_epoch_claims(str(org.id), **over), settings.jwt_secret_key, "HS256")
    resp = _get(app, token)
    _assert_401(resp)
    assert "lifetime" in resp.get_json()["message"].lower()


@pytest.mark.parametrize("with_iat", [True, False])
def test_token_of_exactly_the_maximum_lifetime_is_accepted(app, org, settings, with_iat):
    now, top = int(datetime.now(UTC).timestamp()), settings.jwt_max_lifetime_seconds
    over = {"exp": now + top} if with_iat else {"iat": ..., "exp": now + top - 5}
    token = pyjwt.encode(_epoch_claims(str(org.id), **over), settings.jwt_secret_key, "HS256")
    assert _get(app, token).status_code == 200


def test_max_lifetime_follows_the_setting(settings, runtime, org):
    from api import create_app

    short = dataclasses.replace(settings, jwt_max_lifetime_seconds=600)
    app = create_app(short, runtime)
    assert (
        _get(app, issue_token(short, sub="u", org_id=str(org.id), scopes=[], ttl=600)).status_code
        == 200
    )
    _assert_401(_get(app, issue_token(settings, sub="u", org_id=str(org.id), scopes=[], ttl=601)))


def test_issue_token_and_cli_refuse_a_ttl_beyond_the_maximum(settings, org):
    top = settings.jwt_max_lifetime_seconds
    with pytest.raises(ValueError, match="JWT_MAX_LIFETIME_SECONDS"):
        issue_token(settings, sub="u", org_id=str(org.id), scopes=[], ttl=top + 1)
    args = ["token", "issue", "--org", str(org.id), "--sub", "u", "--ttl", str(top + 1)]
    result = CliRunner(env=CLI_ENV).invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "--ttl" in result.output


@pytest.fixture(scope="module")
def module_app(settings):
    """An app with one extra endpoint that needs the hse module, like certification routes."""
    from api import create_app

    app = create_app(settings)
    blp = Blueprint("probe", __name__, url_prefix="/api/v1/probe")

    @blp.route("")
    class Probe(MethodView):
        @requires("certifications:read", module="hse")
        def get(self):
            return {"ok": True}

    app.extensions["flask-smorest"]["apis"][""]["ext_obj"].register_blueprint(blp)
    return app


def test_module_disabled_is_403(module_app, make_org, settings):
    off = make_org(modules=())
    token = issue_token(settings, sub="u", org_id=str(off.id), scopes=["certifications:read"])
    resp = module_app.test_client().get(
        "/api/v1/probe", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 403
    body = resp.get_json()
    assert body["code"] == "module_disabled"
    assert body["http_status"] == 403

    on = make_org(modules=("hse",))
    token = issue_token(settings, sub="u", org_id=str(on.id), scopes=["certifications:read"])
    resp = module_app.test_client().get(
        "/api/v1/probe", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 200


def test_auth_and_view_share_one_connection(api, org):
    """The organization lookup runs in the request's own session: one pooled connection and
    one transaction per request, not one for auth and another for the view."""
    import threading

    from sqlalchemy import event

    from infra import database as db

    checkouts: list[object] = []
    engine = db.get_engine()
    me = threading.get_ident()  # not a worker thread busy with another test's jobs

    def _count(*_args: object) -> None:
        if threading.get_ident() == me:
            checkouts.append(object())

    event.listen(engine, "checkout", _count)
    try:
        assert api.get("/org").status_code == 200
        assert api.patch("/org", json={"name": "Renamed"}).status_code == 200
    finally:
        event.remove(engine, "checkout", _count)
    assert len(checkouts) == 2  # one per request
