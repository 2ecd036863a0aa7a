"""Configuration: safe local defaults; production refuses weak secrets."""

from __future__ import annotations

import pytest

from infra.settings import ConfigError, load_settings

PROD = {
    "CERTS_ENV": "production",
    "DATABASE_URL": "postgresql://app@db/certs",
    "REDIS_URL": "redis://redis:6379/0",
}


def test_development_defaults():  # type: ignore[no-untyped-def]
    s = load_settings({})
    assert s.env == "development"
    assert s.database_url.startswith("sqlite:///")
    assert s.redis_url is None
    assert s.jwt_algorithm == "HS256"


@pytest.mark.parametrize("secret", [None, "", "short", "dev-insecure-jwt-secret-change-me"])
def test_production_refuses_weak_secret(secret):  # type: ignore[no-untyped-def]
    env = dict(PROD)
    if secret is not None:
        env["JWT_SECRET_KEY"] = secret
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        load_settings(env)


def test_production_accepts_strong_secret():  # type: ignore[no-untyped-def]
    s = load_settings({**PROD, "JWT_SECRET_KEY": "k" * 40})
    assert s.env == "production"


@pytest.mark.parametrize(("key", "value"), [("DATABASE_URL", "sqlite:///x.db"), ("REDIS_URL", "")])
def test_production_needs_real_services(key, value):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError):
        load_settings({**PROD, "JWT_SECRET_KEY": "k" * 40, key: value})


def test_rs256_needs_public_key():  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="JWT_PUBLIC_KEY"):
        load_settings({"JWT_ALGORITHM": "RS256"})


def test_unknown_algorithm_refused():  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError):
        load_settings({"JWT_ALGORITHM": "none"})


def test_request_body_limit():  # type: ignore[no-untyped-def]
    assert load_settings({}).max_request_bytes == 10 * 1024 * 1024
    assert load_settings({"MAX_REQUEST_BYTES": "2048"}).max_request_bytes == 2048
    for bad in ("ten", "0", "-1"):
        with pytest.raises(ConfigError, match="MAX_REQUEST_BYTES"):
            load_settings({"MAX_REQUEST_BYTES": bad})
