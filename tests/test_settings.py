"""Configuration: safe local defaults; production refuses weak secrets."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from infra.settings import (
    DEV_DB_PLATFORM_KEY,
    DEV_WEBHOOK_SECRET_KEY,
    ConfigError,
    load_settings,
)

PROD_FERNET_KEY = Fernet.generate_key().decode()
PROD = {
    "CERTS_ENV": "production",
    "DATABASE_URL": "postgresql://app@db/certs",
    "REDIS_URL": "redis://redis:6379/0",
    "DB_PLATFORM_KEYS": "p" * 40,
    "WEBHOOK_SECRET_KEYS": PROD_FERNET_KEY,
}


def test_development_defaults():
    s = load_settings({})
    assert s.env == "development"
    assert s.database_url.startswith("sqlite:///")
    assert s.redis_url is None
    assert s.jwt_algorithm == "HS256"


@pytest.mark.parametrize("secret", [None, "", "short", "dev-insecure-jwt-secret-change-me"])
def test_production_refuses_weak_secret(secret):
    env = dict(PROD)
    if secret is not None:
        env["JWT_SECRET_KEY"] = secret
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        load_settings(env)


def test_production_accepts_strong_secret():
    s = load_settings({**PROD, "JWT_SECRET_KEY": "k" * 40})
    assert s.env == "production"


@pytest.mark.parametrize(("key", "value"), [("DATABASE_URL", "sqlite:///x.db"), ("REDIS_URL", "")])
def test_production_needs_real_services(key, value):
    with pytest.raises(ConfigError):
        load_settings({**PROD, "JWT_SECRET_KEY": "k" * 40, key: value})


def test_rs256_needs_public_key():
    with pytest.raises(ConfigError, match="JWT_PUBLIC_KEY"):
        load_settings({"JWT_ALGORITHM": "RS256"})


def test_unknown_algorithm_refused():
    with pytest.raises(ConfigError):
        load_settings({"JWT_ALGORITHM": "none"})


def test_jwt_max_lifetime_defaults_to_a_day_and_must_be_positive():
    assert load_settings({}).jwt_max_lifetime_seconds == 86400
    assert load_settings({"JWT_MAX_LIFETIME_SECONDS": "900"}).jwt_max_lifetime_seconds == 900
    for bad in ("0", "-5"):
        with pytest.raises(ConfigError, match="JWT_MAX_LIFETIME_SECONDS"):
            load_settings({"JWT_MAX_LIFETIME_SECONDS": bad})


def test_platform_keys_default_in_development_only():
    dev = load_settings({})
    assert dev.db_platform_keys == (DEV_DB_PLATFORM_KEY,)
    rotated = load_settings({"DB_PLATFORM_KEYS": " new-key , old-key ,"})
    assert rotated.db_platform_keys == ("new-key", "old-key")  # first presented, all accepted


@pytest.mark.parametrize("keys", [None, "", "short", DEV_DB_PLATFORM_KEY, "p" * 40 + ",short"])
def test_production_refuses_weak_platform_keys(keys):
    env = {**PROD, "JWT_SECRET_KEY": "k" * 40}
    env.pop("DB_PLATFORM_KEYS")
    if keys is not None:
        env["DB_PLATFORM_KEYS"] = keys
    with pytest.raises(ConfigError, match="DB_PLATFORM_KEYS"):
        load_settings(env)


def test_webhook_secret_keys_default_is_a_fixed_fernet_key_outside_production():
    dev = load_settings({})
    assert dev.webhook_secret_keys == (DEV_WEBHOOK_SECRET_KEY,)
    assert load_settings({"CERTS_ENV": "test"}).webhook_secret_keys == (DEV_WEBHOOK_SECRET_KEY,)
    Fernet(DEV_WEBHOOK_SECRET_KEY.encode())  # a usable key, the same in every process
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert load_settings({"WEBHOOK_SECRET_KEYS": f"{new}, {old}"}).webhook_secret_keys == (new, old)


@pytest.mark.parametrize(
    "keys",
    ["not-a-key", "c2hvcnQ=", PROD_FERNET_KEY + ",x"],
    ids=["not-a-key", "too-short", "second-not-a-key"],  # stable ids: xdist workers must agree
)
def test_webhook_secret_keys_must_be_fernet_keys(keys):
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET_KEYS"):
        load_settings({"WEBHOOK_SECRET_KEYS": keys})


@pytest.mark.parametrize("keys", [None, "", DEV_WEBHOOK_SECRET_KEY])
def test_production_requires_webhook_secret_keys(keys):
    env = {**PROD, "JWT_SECRET_KEY": "k" * 40}
    env.pop("WEBHOOK_SECRET_KEYS")
    if keys is not None:
        env["WEBHOOK_SECRET_KEYS"] = keys
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET_KEYS"):
        load_settings(env)


def test_request_body_limit():
    assert load_settings({}).max_request_bytes == 10 * 1024 * 1024
    assert load_settings({"MAX_REQUEST_BYTES": "2048"}).max_request_bytes == 2048
    for bad in ("ten", "0", "-1"):
        with pytest.raises(ConfigError, match="MAX_REQUEST_BYTES"):
            load_settings({"MAX_REQUEST_BYTES": bad})


def test_document_storage_defaults_and_choices(tmp_path):
    s = load_settings({"CERTS_INSTANCE_DIR": str(tmp_path)})
    assert s.document_storage == "local"
    assert s.document_dir == str(tmp_path / "documents")
    assert s.document_max_bytes == 20 * 1024 * 1024
    s3 = load_settings({"DOCUMENT_STORAGE": "S3", "S3_BUCKET": "b", "S3_SSE": "aws:kms"})
    assert (s3.document_storage, s3.s3_bucket, s3.s3_sse) == ("s3", "b", "aws:kms")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DOCUMENT_STORAGE": "ftp"}, "DOCUMENT_STORAGE"),
        ({"DOCUMENT_STORAGE": "s3"}, "S3_BUCKET"),
        ({"S3_SSE": "none"}, "S3_SSE"),
        ({"DOCUMENT_MAX_BYTES": "10"}, "DOCUMENT_MAX_BYTES"),
        ({"DOCUMENT_ORG_QUOTA_BYTES": "-1"}, "DOCUMENT_ORG_QUOTA_BYTES"),
        ({"S3_URL_EXPIRY_SECONDS": "0"}, "S3_URL_EXPIRY_SECONDS"),
    ],
)
def test_document_settings_refuse_nonsense(env, named):
    with pytest.raises(ConfigError, match=named):
        load_settings(env)


def test_rate_limits_are_validated_and_default_to_redis():
    s = load_settings({"REDIS_URL": "redis://cache:6379/0"})
    assert (s.rate_limit_per_subject, s.rate_limit_storage_url) == (
        "600/minute",
        "redis://cache:6379/0",
    )
    assert load_settings({}).rate_limit_storage_url == "memory://"
    assert load_settings({"RATE_LIMIT_HEAVY": "5/second;100/hour"}).rate_limit_heavy == (
        "5/second;100/hour"
    )
    with pytest.raises(ConfigError, match="RATE_LIMIT_PER_ORG"):
        load_settings({"RATE_LIMIT_PER_ORG": "lots"})
