"""The S3 document store against a real S3-compatible server on loopback (moto's standalone
server): a round trip through the HTTP API, encryption, expiring signed URLs, no row for a
failed upload, and no orphaned object after the sweep."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from sqlalchemy import delete, func, select

from api import create_app
from certifications.evidence.models import Document
from certifications.evidence.storage import document_store
from certifications.evidence.sweep import sweep_documents
from infra.database import utcnow
from tests.conftest import ApiClient
from tests.evidence.conftest import files, pdf
from tests.support.suite import SETTINGS, free_port

BUCKET = "certs-evidence"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, for this module."""
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)  # noqa: S310 - loopback
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _settings(endpoint: str, **changes: Any) -> Any:
    s3 = {
        "document_storage": "s3",
        "s3_bucket": BUCKET,
        "s3_endpoint_url": endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
    }
    return dataclasses.replace(SETTINGS, **(s3 | changes))


@pytest.fixture(scope="module")
def bucket(s3_endpoint) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def s3_admin(scene, s3_endpoint, bucket, token_for) -> ApiClient:
    from tests.conftest import RUNTIME

    app = create_app(_settings(s3_endpoint, s3_url_expiry_seconds=2), RUNTIME)
    return ApiClient(app, token_for(scene.org))


def _upload(client: ApiClient, assignment_id: Any, data: bytes) -> Any:
    return client.post(
        f"/assignments/{assignment_id}/documents",
        data=files((data, "card.pdf")),
        content_type="multipart/form-data",
    )


def test_round_trip_encrypted_with_a_short_lived_signed_url(scene, s3_admin, bucket) -> None:
    data = pdf("s3 round trip")
    resp = _upload(s3_admin, scene.assignment.id, data)
    assert resp.status_code == 201, resp.get_json()
    doc = resp.get_json()

    key = f"documents/{scene.org.id}/{doc['id']}"
    head = bucket.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == len(data)

    content = s3_admin.get(f"/documents/{doc['id']}/content")
    assert content.status_code == 302
    assert content.headers["X-Content-Type-Options"] == "nosniff"
    url = content.headers["Location"]
    assert url.startswith(bucket.meta.endpoint_url)
    with urllib.request.urlopen(url, timeout=5) as fetched:  # noqa: S310 - loopback
        assert fetched.read() == data
        assert fetched.headers["Content-Disposition"].startswith("attachment;")

    # Signed to expire S3_URL_EXPIRY_SECONDS after now. moto's server does not check expiry, so
    # the signed terms are what is checked here; test_s3_expiry.py proves the refusal (s3rver).
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["2"]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(signed_at - utcnow()) < timedelta(minutes=1)
    assert query["X-Amz-Signature"][0]
    assert "response-content-disposition" in query


def test_a_failed_upload_leaves_no_row(scene, s3_endpoint, bucket, token_for, as_tenant) -> None:
    from tests.conftest import RUNTIME

    app = create_app(_settings(s3_endpoint, s3_bucket="no-such-bucket"), RUNTIME)
    client = ApiClient(app, token_for(scene.org))
    resp = _upload(client, scene.assignment.id, pdf("refused"))
    assert resp.status_code == 503, resp.get_json()
    assert "nothing was stored" in resp.get_json()["message"]
    with as_tenant(scene.org.id) as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 0


def test_a_deleted_row_leaves_no_orphan_after_the_sweep(
    scene, s3_admin, s3_endpoint, bucket, as_tenant
) -> None:
    kept = _upload(s3_admin, scene.assignment.id, pdf("kept")).get_json()
    lost = _upload(s3_admin, scene.assignment.id, pdf("lost")).get_json()
    with as_tenant(scene.org.id) as s:  # e.g. gone with its assignment (the FK cascades)
        s.execute(delete(Document).where(Document.id == uuid.UUID(lost["id"])))
        s.commit()
    store = document_store(_settings(s3_endpoint, s3_url_expiry_seconds=2))
    with as_tenant(scene.org.id) as s:
        assert sweep_documents(s, store, scene.org.id, utcnow()) == 0  # within the grace
        later = utcnow() + timedelta(hours=2)
        assert sweep_documents(s, store, scene.org.id, later) == 1
    listed = bucket.list_objects_v2(Bucket=BUCKET, Prefix=f"documents/{scene.org.id}/")
    assert [o["Key"] for o in listed["Contents"]] == [f"documents/{scene.org.id}/{kept['id']}"]
