"""The signed URL of a document really expires: proved against s3rver, an S3-compatible server
on loopback that enforces presigned-URL expiry (moto's server, used by test_s3.py, does not).

s3rver is a node program, pinned by `.ci/s3rver/package-lock.json` and installed into
`.tools/s3rver` by `.ci/install-s3rver` (which `.ci/run` calls before the tests, and which this
module calls itself on first use). Skipped, saying why, only where node or npm is absent (and
never under CI=true)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from api import create_app
from tests.conftest import ApiClient
from tests.evidence.conftest import files, pdf
from tests.support.suite import SETTINGS, free_port

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / ".ci" / "install-s3rver"
BUCKET = "certs-evidence"
# s3rver's built-in credentials.
KEY = "S3RVER"
# Short, yet long enough for the first fetch to come back before expiry on a loaded machine
# (X-Amz-Date is whole seconds, so a URL can live up to one second less than this).
EXPIRY_SECONDS = 3


def _s3rver() -> str:
    if shutil.which("node") is None or shutil.which("npm") is None:
        reason = "node and npm are needed for s3rver (.ci/install-s3rver installs them in CI)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # CI must prove expiry, not skip it
        pytest.skip(reason)
    done = subprocess.run([str(INSTALL)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f".ci/install-s3rver failed:\n{done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def s3rver_endpoint(tmp_path_factory) -> Iterator[str]:
    """s3rver on a free loopback port, with one bucket, for this module."""
    executable = _s3rver()
    port = free_port()
    data_dir = tmp_path_factory.mktemp("s3rver")
    proc = subprocess.Popen(
        [executable, "-d", str(data_dir), "-a", "127.0.0.1", "-p", str(port), "-s"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1)  # noqa: S310 - loopback
                break
            except urllib.error.HTTPError:
                break  # it answers (anonymous listing refused): up
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("s3rver did not start") from None
                time.sleep(0.1)
        boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=KEY,
        ).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def admin(scene, s3rver_endpoint, token_for) -> ApiClient:
    from tests.conftest import RUNTIME

    settings = dataclasses.replace(
        SETTINGS,
        document_storage="s3",
        s3_bucket=BUCKET,
        s3_endpoint_url=s3rver_endpoint,
        s3_region="us-east-1",
        s3_access_key_id=KEY,
        s3_secret_access_key=KEY,
        s3_url_expiry_seconds=EXPIRY_SECONDS,
    )
    return ApiClient(create_app(settings, RUNTIME), token_for(scene.org))


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _redirect(client: ApiClient, document_id: Any) -> str:
    content = client.get(f"/documents/{document_id}/content")
    assert content.status_code == 302, content.get_json()
    return str(content.headers["Location"])


def test_the_signed_url_serves_the_file_then_expires(scene, admin) -> None:
    data = pdf("expiring")
    resp = admin.post(
        f"/assignments/{scene.assignment.id}/documents",
        data=files((data, "card.pdf")),
        content_type="multipart/form-data",
    )
    assert resp.status_code == 201, resp.get_json()
    doc_id = resp.get_json()["id"]

    url = _redirect(admin, doc_id)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == [str(EXPIRY_SECONDS)]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expires_at = signed_at + timedelta(seconds=EXPIRY_SECONDS)

    # Works at once (s3rver checks a SigV4 URL's key and validity window, not its signature).
    assert _fetch(url) == (200, data)

    # The same URL once its time is up: refused, and for that reason.
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1.0)
    status, body = _fetch(url)
    assert status == 403, body
    assert b"Request has expired" in body

    # Only the link expired, not the document: asking the API again gives a working one.
    assert _fetch(_redirect(admin, doc_id)) == (200, data)
