"""Where documents' bytes live: a folder on the embedded default, any S3-compatible store in
production (boto3; one prefix per organization; server-side encryption on every object).

Keys are `<org id>/<document id>`, so an org's objects share one prefix and the periodic sweep
(`certifications.evidence.sweep`) lists exactly one org's. Writes stream from a file object in
chunks (boto3's managed transfer on S3), never a whole file in memory.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from infra.errors import DomainError
from infra.settings import Settings

CHUNK = 1024 * 1024
log = logging.getLogger("certs.documents")


class StoreUnavailable(DomainError):
    """The document store refused or could not be reached: nothing was recorded."""

    http_status = 503

    def __init__(self) -> None:
        super().__init__("The document store is unavailable; nothing was stored. Try again later.")


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified_at: datetime


class DocumentStore(Protocol):
    def put(self, key: str, data: IO[bytes], content_type: str) -> None: ...
    def open(self, key: str) -> IO[bytes]: ...
    def signed_url(self, key: str, filename: str, content_type: str) -> str | None: ...
    def delete(self, key: str) -> None: ...
    def list(self, org_id: uuid.UUID) -> Iterator[StoredObject]: ...


def object_key(org_id: uuid.UUID, document_id: uuid.UUID) -> str:
    return f"{org_id}/{document_id}"


class LocalStore:
    """Files under `root` (the instance folder by default); written to a temporary name and
    renamed, so a failed write leaves no partial file under the real name."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        org, _, name = key.partition("/")
        uuid.UUID(org), uuid.UUID(name)  # keys are ours; anything else is a bug, not a path
        return self.root / org / name

    def put(self, key: str, data: IO[bytes], content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(data, out, CHUNK)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open(self, key: str) -> IO[bytes]:
        return self._path(key).open("rb")

    def signed_url(self, key: str, filename: str, content_type: str) -> str | None:
        return None  # served by the API itself

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, org_id: uuid.UUID) -> Iterator[StoredObject]:
        folder = self.root / str(org_id)
        if not folder.is_dir():
            return
        for entry in folder.iterdir():
            if entry.name.startswith("."):
                continue
            modified = datetime.fromtimestamp(entry.stat().st_mtime, UTC)
            yield StoredObject(f"{org_id}/{entry.name}", modified)


class S3Store:
    """An S3-compatible bucket; `prefix` + key per object, SSE on every put."""

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = settings.s3_bucket or ""
        self.prefix = settings.s3_prefix
        self.expiry = settings.s3_url_expiry_seconds
        self.sse: dict[str, str] = {"ServerSideEncryption": settings.s3_sse}
        if settings.s3_sse == "aws:kms" and settings.s3_kms_key_id:
            self.sse["SSEKMSKeyId"] = settings.s3_kms_key_id
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
        )

    def put(self, key: str, data: IO[bytes], content_type: str) -> None:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_fileobj(
                data,
                self.bucket,
                self.prefix + key,
                ExtraArgs={"ContentType": content_type, **self.sse},
            )
        except (Boto3Error, BotoCoreError, ClientError) as exc:
            log.warning("document store refused %s: %s", key, exc)
            raise StoreUnavailable() from exc

    def open(self, key: str) -> IO[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        return body  # type: ignore[no-any-return]

    def signed_url(self, key: str, filename: str, content_type: str) -> str | None:
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.prefix + key,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": attachment(filename),
                },
                ExpiresIn=self.expiry,
            )
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def list(self, org_id: uuid.UUID) -> Iterator[StoredObject]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}{org_id}/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield StoredObject(item["Key"].removeprefix(self.prefix), item["LastModified"])


def attachment(filename: str) -> str:
    """`Content-Disposition: attachment` with an ASCII fallback and the RFC 5987 UTF-8 name."""
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "ignore").decode() or "document"
    ascii_name = ascii_name.replace('"', "").replace("\\", "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@functools.cache
def document_store(settings: Settings) -> DocumentStore:
    """The store `settings` select (one per process and settings: boto3 clients are reused)."""
    if settings.document_storage == "s3":
        return S3Store(settings)
    return LocalStore(settings.document_dir)
