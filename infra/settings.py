"""Configuration read from the environment (SPEC §8a), once, into an immutable object."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

DEV_JWT_SECRET = "dev-insecure-jwt-secret-change-me"  # noqa: S105 - the known-weak default
# Development/test only (production requires DB_PLATFORM_KEYS): the known, public default.
DEV_DB_PLATFORM_KEY = "dev-insecure-db-platform-key-change-me"
# Development/test only (production requires WEBHOOK_SECRET_KEYS): a Fernet key derived from a
# public label, the same in every process and on every run, so a dev database stays readable.
DEV_WEBHOOK_SECRET_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"certs: development webhook secret key (public)").digest()
).decode()


class ConfigError(RuntimeError):
    """The environment asks for something unsafe or impossible."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = ""
    # Migrations run as the table owner; the app connects as a role the RLS policies bind.
    migration_database_url: str = ""
    db_app_role: str | None = None
    # What lets a transaction act as the platform under row-level security (the relay across
    # organizations, the scheduler, creating an organization): the app sets `app.platform` to
    # the first key; the database accepts the sha256 of any of them, stored by `certs db
    # upgrade` in a table only the owner reads. Several keys: rotation without downtime.
    db_platform_keys: tuple[str, ...] = (DEV_DB_PLATFORM_KEY,)
    redis_url: str | None = None
    redis_namespace: str = "certs"
    jwt_secret_key: str = DEV_JWT_SECRET
    jwt_algorithm: str = "HS256"
    jwt_public_key: str | None = None
    jwt_private_key: str | None = None
    # The longest a token may live (`exp - iat`, or `exp - now` without `iat`): a leaked
    # token is good for at most this long, whatever `exp` its issuer wrote.
    jwt_max_lifetime_seconds: int = 24 * 3600
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "certifications@localhost"
    log_level: str = "INFO"
    statement_timeout_ms: int = 30_000
    # Webhooks to private/loopback/link-local addresses (SSRF). Allowed for local development
    # and tests, refused in production unless WEBHOOK_ALLOW_PRIVATE_NETWORKS=true.
    webhook_allow_private: bool = True
    # Fernet keys (32 url-safe base64 bytes each) encrypting the organizations' webhook secrets at
    # rest: the first seals, all open (rotation: docs/operations.md). WEBHOOK_SECRET_KEYS.
    webhook_secret_keys: tuple[str, ...] = (DEV_WEBHOOK_SECRET_KEY,)
    # `json` or `text` (text by default only in development).
    log_format: str = "text"
    # Notification delivery: attempts and exponential backoff between them.
    notification_max_attempts: int = 5
    notification_retry_base_ms: int = 30_000
    notification_retry_max_ms: int = 15 * 60_000
    # Metrics: the prometheus multiprocess directory (gunicorn/dramatiq children) and how long
    # the database gauges are cached between scrapes.
    prometheus_multiproc_dir: str | None = None
    metrics_db_cache_seconds: float = 15.0
    worker_metrics_port: int = 9191
    worker_processes: int = 2
    worker_threads: int = 4
    # The largest request body the API reads (413 above it, before parsing): a 10,000-row bulk
    # import of the longest fields fits in under 5 MB.
    max_request_bytes: int = 10 * 1024 * 1024
    # Background jobs (jobs/relay.py): a message whose retries ran out is sent again by the
    # outbox sweep after JOB_RETRY_BASE_SECONDS x 2^(failures-1), at most JOB_RETRY_MAX_SECONDS
    # apart, until JOB_RETRY_WINDOW_HOURS after its first failure (then `dead`). A worker
    # running a message renews its lease every third of JOB_LEASE_SECONDS; the sweep re-sends
    # a message whose lease ran out (its worker died).
    job_retry_base_seconds: int = 60
    job_retry_max_seconds: int = 3600
    job_retry_window_hours: int = 24
    job_lease_seconds: int = 30
    # Evidence documents (certifications/evidence): where the bytes live (`local` under the
    # instance folder, or `s3` for any S3-compatible store), the largest file one upload may
    # carry (its own body limit, not MAX_REQUEST_BYTES) and the bytes one org may keep (0: none).
    document_storage: str = "local"
    document_dir: str = "instance/documents"
    document_max_bytes: int = 20 * 1024 * 1024
    document_org_quota_bytes: int = 5 * 1024 * 1024 * 1024
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_prefix: str = "documents/"
    # Server-side encryption of every object: AES256 (S3-managed keys) or aws:kms (+ key id).
    s3_sse: str = "AES256"
    s3_kms_key_id: str | None = None
    # Unset: boto3's own credential chain (instance role, web identity, its config files).
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_url_expiry_seconds: int = 300
    # Rate limits (api/rate_limits.py), in the `limits` notation ("600/minute", "10/second;
    # 500/hour"): every request of a token subject, every request of an organization, and the
    # heavy requests (bulk writes and CSV exports) of a subject. Counted in
    # RATE_LIMIT_STORAGE_URL: REDIS_URL by default (shared by every process), else memory.
    rate_limit_enabled: bool = True
    rate_limit_per_subject: str = "600/minute"
    rate_limit_per_org: str = "3000/minute"
    rate_limit_heavy: str = "30/minute"
    rate_limit_storage_url: str = "memory://"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def _int(env: dict[str, str], name: str, default: int) -> int:
    value = env.get(name, "")
    if value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {value!r}") from None


def _rate(env: dict[str, str], name: str, default: str) -> str:
    """A rate limit in the `limits` notation, e.g. "600/minute" or "10/second;500/hour"."""
    from limits import parse_many  # here: only the API counts requests

    value = (env.get(name) or default).strip()
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(
            f"{name} must be a rate such as 600/minute or 10/second;500/hour, not {value!r}"
        ) from None
    return value


def _read_key(value: str | None) -> str | None:
    """A PEM key given inline or as a path to a file."""
    if not value:
        return None
    if value.lstrip().startswith("-----BEGIN"):
        return value
    return Path(value).read_text()


def _list(value: str | None) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _fernet_keys(env: dict[str, str], name: str, default: str) -> tuple[str, ...]:
    keys = _list(env.get(name)) or (default,)
    for key in keys:
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise ConfigError(
                f"{name} must list Fernet keys (32 url-safe base64 bytes each, e.g. from "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key()"
                ".decode())'`)"
            )
    return keys


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings from `environ` (the process environment when None): the only reader of it."""
    env = dict(os.environ if environ is None else environ)
    mode = env.get("CERTS_ENV", "development")
    if mode not in {"development", "production", "test"}:
        raise ConfigError(f"CERTS_ENV must be development, production or test, not {mode!r}")
    instance = Path(env.get("CERTS_INSTANCE_DIR") or Path.cwd() / "instance")
    default_db = f"sqlite:///{instance / 'certs.db'}"
    log_format = env.get("LOG_FORMAT", "").strip().lower()
    if log_format not in {"json", "text"}:
        log_format = "text" if mode == "development" else "json"
    database_url = env.get("DATABASE_URL") or default_db
    algorithm = env.get("JWT_ALGORITHM", "HS256")
    if algorithm not in {"HS256", "RS256"}:
        raise ConfigError(f"JWT_ALGORITHM must be HS256 or RS256, not {algorithm!r}")
    secret = env.get("JWT_SECRET_KEY") or DEV_JWT_SECRET
    settings = Settings(
        env=mode,
        database_url=database_url,
        migration_database_url=env.get("MIGRATION_DATABASE_URL") or database_url,
        db_app_role=env.get("DB_APP_ROLE") or None,
        db_platform_keys=_list(env.get("DB_PLATFORM_KEYS")) or (DEV_DB_PLATFORM_KEY,),
        redis_url=env.get("REDIS_URL") or None,
        redis_namespace=env.get("REDIS_NAMESPACE", "certs"),
        jwt_secret_key=secret,
        jwt_algorithm=algorithm,
        jwt_public_key=_read_key(env.get("JWT_PUBLIC_KEY")),
        jwt_private_key=_read_key(env.get("JWT_PRIVATE_KEY")),
        jwt_max_lifetime_seconds=_int(env, "JWT_MAX_LIFETIME_SECONDS", 24 * 3600),
        smtp_host=env.get("SMTP_HOST") or None,
        smtp_port=_int(env, "SMTP_PORT", 25),
        smtp_username=env.get("SMTP_USERNAME") or None,
        smtp_password=env.get("SMTP_PASSWORD") or None,
        smtp_starttls=_bool(env.get("SMTP_STARTTLS")),
        mail_from=env.get("MAIL_FROM", "certifications@localhost"),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 30_000),
        webhook_allow_private=_bool(
            env.get("WEBHOOK_ALLOW_PRIVATE_NETWORKS"), default=mode != "production"
        ),
        webhook_secret_keys=_fernet_keys(env, "WEBHOOK_SECRET_KEYS", DEV_WEBHOOK_SECRET_KEY),
        log_format=log_format,
        notification_max_attempts=_int(env, "NOTIFICATION_MAX_ATTEMPTS", 5),
        notification_retry_base_ms=_int(env, "NOTIFICATION_RETRY_BASE_MS", 30_000),
        notification_retry_max_ms=_int(env, "NOTIFICATION_RETRY_MAX_MS", 900_000),
        prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        metrics_db_cache_seconds=float(env.get("METRICS_DB_CACHE_SECONDS") or 15),
        worker_metrics_port=_int(env, "WORKER_METRICS_PORT", 9191),
        worker_processes=_int(env, "WORKER_PROCESSES", 2),
        worker_threads=_int(env, "WORKER_THREADS", 4),
        max_request_bytes=_int(env, "MAX_REQUEST_BYTES", 10 * 1024 * 1024),
        job_retry_base_seconds=_int(env, "JOB_RETRY_BASE_SECONDS", 60),
        job_retry_max_seconds=_int(env, "JOB_RETRY_MAX_SECONDS", 3600),
        job_retry_window_hours=_int(env, "JOB_RETRY_WINDOW_HOURS", 24),
        job_lease_seconds=_int(env, "JOB_LEASE_SECONDS", 30),
        document_storage=(env.get("DOCUMENT_STORAGE") or "local").strip().lower(),
        document_dir=env.get("DOCUMENT_DIR") or str(instance / "documents"),
        document_max_bytes=_int(env, "DOCUMENT_MAX_BYTES", 20 * 1024 * 1024),
        document_org_quota_bytes=_int(env, "DOCUMENT_ORG_QUOTA_BYTES", 5 * 1024**3),
        s3_bucket=env.get("S3_BUCKET") or None,
        s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
        s3_region=env.get("S3_REGION") or None,
        s3_prefix=env.get("S3_PREFIX", "documents/"),
        s3_sse=env.get("S3_SSE") or "AES256",
        s3_kms_key_id=env.get("S3_KMS_KEY_ID") or None,
        s3_access_key_id=env.get("S3_ACCESS_KEY_ID") or None,
        s3_secret_access_key=env.get("S3_SECRET_ACCESS_KEY") or None,
        s3_url_expiry_seconds=_int(env, "S3_URL_EXPIRY_SECONDS", 300),
        rate_limit_enabled=_bool(env.get("RATE_LIMIT_ENABLED"), default=True),
        rate_limit_per_subject=_rate(env, "RATE_LIMIT_PER_SUBJECT", "600/minute"),
        rate_limit_per_org=_rate(env, "RATE_LIMIT_PER_ORG", "3000/minute"),
        rate_limit_heavy=_rate(env, "RATE_LIMIT_HEAVY", "30/minute"),
        rate_limit_storage_url=(
            env.get("RATE_LIMIT_STORAGE_URL") or env.get("REDIS_URL") or "memory://"
        ),
    )
    _refuse_unsafe(settings)
    return settings


def _refuse_unsafe(s: Settings) -> None:
    if s.jwt_max_lifetime_seconds <= 0:
        raise ConfigError("JWT_MAX_LIFETIME_SECONDS must be a positive number of seconds")
    if s.max_request_bytes < 1024:
        raise ConfigError(f"MAX_REQUEST_BYTES must be at least 1024, not {s.max_request_bytes}")
    if min(s.job_retry_base_seconds, s.job_retry_window_hours) < 1 or s.job_lease_seconds < 3:
        raise ConfigError(
            "JOB_RETRY_BASE_SECONDS and JOB_RETRY_WINDOW_HOURS must be at least 1, "
            "JOB_LEASE_SECONDS at least 3"
        )
    if s.job_retry_max_seconds < s.job_retry_base_seconds:
        raise ConfigError("JOB_RETRY_MAX_SECONDS must be at least JOB_RETRY_BASE_SECONDS")
    _refuse_bad_documents(s)
    if s.jwt_algorithm == "RS256" and not s.jwt_public_key:
        raise ConfigError("JWT_ALGORITHM=RS256 needs JWT_PUBLIC_KEY (PEM text or a file path)")
    if s.env != "production":
        return
    if s.jwt_algorithm == "HS256" and (
        s.jwt_secret_key == DEV_JWT_SECRET or len(s.jwt_secret_key) < 32
    ):
        raise ConfigError(
            "CERTS_ENV=production refuses a missing, default or short JWT_SECRET_KEY "
            "(use at least 32 random characters)"
        )
    if s.database_url.startswith("sqlite"):
        raise ConfigError("CERTS_ENV=production needs DATABASE_URL pointing at PostgreSQL")
    if DEV_WEBHOOK_SECRET_KEY in s.webhook_secret_keys:
        raise ConfigError(
            "CERTS_ENV=production refuses a missing or default WEBHOOK_SECRET_KEYS "
            "(comma-separated Fernet keys; the first encrypts, all decrypt)"
        )
    if any(k == DEV_DB_PLATFORM_KEY or len(k) < 32 for k in s.db_platform_keys):
        raise ConfigError(
            "CERTS_ENV=production refuses a missing, default or short DB_PLATFORM_KEYS "
            "(comma-separated, each at least 32 random characters)"
        )
    if not s.redis_url:
        raise ConfigError("CERTS_ENV=production needs REDIS_URL")


def _refuse_bad_documents(s: Settings) -> None:
    if s.document_storage not in {"local", "s3"}:
        raise ConfigError(f"DOCUMENT_STORAGE must be local or s3, not {s.document_storage!r}")
    if s.document_storage == "s3" and not s.s3_bucket:
        raise ConfigError("DOCUMENT_STORAGE=s3 needs S3_BUCKET")
    if s.s3_sse not in {"AES256", "aws:kms"}:
        raise ConfigError(f"S3_SSE must be AES256 or aws:kms, not {s.s3_sse!r}")
    if s.document_max_bytes < 1024:
        raise ConfigError(f"DOCUMENT_MAX_BYTES must be at least 1024, not {s.document_max_bytes}")
    if s.document_org_quota_bytes < 0:
        raise ConfigError("DOCUMENT_ORG_QUOTA_BYTES must be 0 (no quota) or a positive number")
    if not 1 <= s.s3_url_expiry_seconds <= 7 * 24 * 3600:
        raise ConfigError("S3_URL_EXPIRY_SECONDS must be between 1 and 604800 (7 days)")
