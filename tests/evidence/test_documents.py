"""Documents through the HTTP API: type by content, size limits while streaming, dedupe,
sanitised names, safe serving, soft delete (local store; the S3 store: test_s3.py)."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from api.limits import UPLOAD_OVERHEAD
from certifications.audit.models import AuditEvent
from certifications.evidence import documents
from certifications.evidence.documents import TooLarge, Upload
from certifications.evidence.storage import document_store
from infra.database import utcnow
from tests.evidence.conftest import EXE_BYTES, PNG_BYTES, files, pdf
from tests.support.suite import SETTINGS

MB = 1024 * 1024


def _upload(client: Any, assignment_id: Any, data: bytes, name: str, **fields: Any) -> Any:
    return client.post(
        f"/assignments/{assignment_id}/documents",
        data=files((data, name), **fields),
        content_type="multipart/form-data",
    )


def test_upload_read_and_dedupe(scene) -> None:
    data = pdf("round trip")
    resp = _upload(scene.admin, scene.assignment.id, data, "../../etc/Zertifikat Müller.exe")
    assert resp.status_code == 201, resp.get_json()
    doc = resp.get_json()
    assert doc["content_type"] == "application/pdf"
    assert doc["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc["size"] == len(data)
    assert doc["cycle"] == 1
    # No path, no space, no non-ASCII, and the real type's extension.
    assert doc["filename"] == "etc_Zertifikat_Muller.pdf"

    again = _upload(scene.admin, scene.assignment.id, data, "copy.pdf")
    assert again.status_code == 200
    assert again.get_json()["id"] == doc["id"]

    listed = scene.admin.get(f"/assignments/{scene.assignment.id}/documents").get_json()
    assert [d["id"] for d in listed["items"]] == [doc["id"]]
    assert scene.admin.get(f"/documents/{doc['id']}").get_json()["sha256"] == doc["sha256"]

    content = scene.admin.get(f"/documents/{doc['id']}/content")
    assert content.status_code == 200
    assert content.data == data
    assert content.headers["Content-Type"] == "application/pdf"
    assert content.headers["Content-Disposition"].startswith("attachment;")
    assert "etc_Zertifikat_Muller.pdf" in content.headers["Content-Disposition"]
    assert content.headers["X-Content-Type-Options"] == "nosniff"
    content.close()


def test_an_image_is_accepted_and_its_name_follows_its_type(scene) -> None:
    resp = _upload(scene.admin, scene.assignment.id, PNG_BYTES, "scan.pdf")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["content_type"] == "image/png"
    assert resp.get_json()["filename"] == "scan.png"


def test_an_executable_renamed_pdf_is_415(scene) -> None:
    for data in (EXE_BYTES, b"just some text, not a certificate\n" * 20):
        resp = _upload(scene.admin, scene.assignment.id, data, "certificate.pdf")
        assert resp.status_code == 415, resp.get_json()
        assert "file" in resp.get_json()["errors"]
    listed = scene.admin.get(f"/assignments/{scene.assignment.id}/documents").get_json()
    assert listed["items"] == []


class _CountingStream(io.RawIOBase):
    """`size` bytes of a multipart body, counting what the server reads."""

    def __init__(self, size: int) -> None:
        self.size, self.read_bytes = size, 0
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n'
        self.head = head + b"%PDF-1.4\n"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    _probe = 0

    def tell(self) -> int:
        return self._probe or self.read_bytes

    def seek(self, pos: int, whence: int = 0) -> int:
        """Only werkzeug's length probe (to the end and back): nothing is read by it."""
        self._probe = self.size if whence == 2 else 0
        return self.tell()

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        if n <= 0:
            return 0
        start = self.read_bytes
        chunk = (self.head[start : start + n] if start < len(self.head) else b"") or b"0"
        chunk = chunk.ljust(n, b"0")[:n]
        buffer[:n] = chunk
        self.read_bytes += n
        return n


def test_21_mb_is_refused_before_it_is_read(scene, app) -> None:
    """A declared length over the upload limit is refused before a byte of it is read."""
    client = app.test_client()
    url = f"/api/v1/assignments/{scene.assignment.id}/documents"
    auth = {"Authorization": f"Bearer {scene.admin.token}"}
    size = 21 * MB

    declared = _CountingStream(size)
    resp = client.post(
        url,
        input_stream=declared,
        headers=auth | {"Content-Length": str(size)},
        content_type="multipart/form-data; boundary=b",
    )
    assert resp.status_code == 413, resp.get_data(as_text=True)[:300]
    assert "file" in resp.get_json()["errors"]
    assert declared.read_bytes == 0


def _chunked(app: Any, url: str, token: str, stream: Any, boundary: str) -> Any:
    """POST `stream` without a Content-Length, as gunicorn hands over a chunked body (the
    test client always declares a length, so the WSGI app is called directly)."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    environ = EnvironBuilder(
        path=url, method="POST", headers={"Authorization": f"Bearer {token}"}
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["CONTENT_TYPE"] = f"multipart/form-data; boundary={boundary}"
    environ["wsgi.input"] = stream
    environ["wsgi.input_terminated"] = True
    body, status, _headers = run_wsgi_app(app, environ)
    try:
        return int(status.split()[0]), json.loads(b"".join(body))
    finally:
        body.close()  # type: ignore[attr-defined]


def test_a_chunked_body_is_cut_at_the_upload_limit(scene, app) -> None:
    url = f"/api/v1/assignments/{scene.assignment.id}/documents"
    too_big = _CountingStream(21 * MB)
    status, body = _chunked(app, url, scene.admin.token, too_big, "b")
    assert status == 413, body
    assert too_big.read_bytes <= SETTINGS.document_max_bytes + UPLOAD_OVERHEAD + 1


def test_a_chunked_upload_within_the_limit_goes_through(scene, app) -> None:
    url = f"/api/v1/assignments/{scene.assignment.id}/documents"
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    boundary, data = encode_multipart(
        {"file": FileStorage(io.BytesIO(pdf("chunked") + b"0" * (3 * MB)), filename="c.pdf")}
    )
    status, body = _chunked(app, url, scene.admin.token, io.BytesIO(data), boundary)
    assert status == 201, body


def test_the_upload_limit_is_its_own_not_max_request_bytes(scene) -> None:
    """11 MB is over MAX_REQUEST_BYTES (10 MB) but within DOCUMENT_MAX_BYTES (20 MB)."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    big = pdf("big") + b"0" * (11 * MB)
    # Encoded here, in memory: the test client's own encoder spools big bodies to a temporary
    # file it never closes (a ResourceWarning in whichever test runs next).
    part = FileStorage(io.BytesIO(big), filename="big.pdf")
    boundary, body = encode_multipart({"file": part})
    resp = scene.admin.post(
        f"/assignments/{scene.assignment.id}/documents",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["size"] == len(big)
    # …while a JSON body of that size is still refused.
    assert scene.admin.post("/assignments", data=b"{" * (11 * MB)).status_code == 413


def test_cycle_is_checked_and_unknown_fields_refused(scene) -> None:
    bad = _upload(scene.admin, scene.assignment.id, pdf("c"), "c.pdf", cycle=2)
    assert bad.status_code == 422
    assert "cycle" in bad.get_json()["errors"]
    unknown = _upload(scene.admin, scene.assignment.id, pdf("c"), "c.pdf", org_id="x")
    assert unknown.status_code == 422
    assert "org_id" in unknown.get_json()["errors"]
    none = scene.admin.post(
        f"/assignments/{scene.assignment.id}/documents", data={}, content_type="multipart/form-data"
    )
    assert none.status_code == 422
    assert "file" in none.get_json()["errors"]


def test_delete_is_soft_and_audited(scene, as_tenant) -> None:
    doc = _upload(scene.admin, scene.assignment.id, pdf("d"), "d.pdf").get_json()
    assert scene.admin.delete(f"/documents/{doc['id']}").status_code == 204
    assert scene.admin.get(f"/documents/{doc['id']}").status_code == 404
    assert scene.admin.get(f"/documents/{doc['id']}/content").status_code == 404
    assert scene.admin.delete(f"/documents/{doc['id']}").status_code == 404
    with as_tenant(scene.org.id) as s:
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.entity_type == "document",
                AuditEvent.entity_id == uuid.UUID(doc["id"]),
            )
        ).all()
        row = s.get(documents.Document, uuid.UUID(doc["id"]))
        assert row is not None  # the record stays
        assert row.deleted_at is not None
    assert [e.action for e in events] == ["create", "update"]
    assert events[1].after["deleted_by"] == "tester"
    # The same bytes may be uploaded again once the first copy is deleted.
    assert _upload(scene.admin, scene.assignment.id, pdf("d"), "d.pdf").status_code == 201


def test_over_the_org_quota_is_413_with_a_clear_message(scene, as_tenant) -> None:
    _upload(scene.admin, scene.assignment.id, pdf("first"), "a.pdf")
    store = document_store(SETTINGS)
    with as_tenant(scene.org.id) as s:
        assignment = s.get(documents.Assignment, scene.assignment.id)
        with pytest.raises(TooLarge, match="quota") as refused:
            documents.store_document(
                s,
                store,
                assignment,
                Upload(io.BytesIO(pdf("second")), "b.pdf"),
                cycle=None,
                max_bytes=SETTINGS.document_max_bytes,
                quota_bytes=len(pdf("first")) + 10,
                actor="tester",
                now=utcnow(),
            )
    assert "DOCUMENT_ORG_QUOTA_BYTES" in str(refused.value)


def test_sweep_removes_orphans_and_keeps_live_bytes(scene, as_tenant) -> None:
    from datetime import timedelta

    from certifications.evidence.storage import object_key
    from certifications.evidence.sweep import sweep_documents

    live = _upload(scene.admin, scene.assignment.id, pdf("live"), "l.pdf").get_json()
    gone = _upload(scene.admin, scene.assignment.id, pdf("gone"), "g.pdf").get_json()
    scene.admin.delete(f"/documents/{gone['id']}")
    store = document_store(SETTINGS)
    keys = {o.key for o in store.list(scene.org.id)}
    assert object_key(scene.org.id, gone["id"]) in keys
    with as_tenant(scene.org.id) as s:
        assert sweep_documents(s, store, scene.org.id, utcnow()) == 0  # too young yet
        assert sweep_documents(s, store, scene.org.id, utcnow() + timedelta(hours=2)) == 1
    keys = {o.key for o in store.list(scene.org.id)}
    assert keys == {object_key(scene.org.id, live["id"])}


def test_the_org_tick_sweeps_the_document_store(scene) -> None:
    """The periodic per-org tick runs the sweep (workers.tick)."""
    from datetime import timedelta

    from certifications.evidence.storage import object_key
    from workers.tick import tick_now

    gone = _upload(scene.admin, scene.assignment.id, pdf("tick"), "t.pdf").get_json()
    scene.admin.delete(f"/documents/{gone['id']}")
    report = tick_now(now=utcnow() + timedelta(hours=2), org_id=scene.org.id)
    assert report["ticks"][str(scene.org.id)]["documents_swept"] == 1
    keys = {o.key for o in document_store(SETTINGS).list(scene.org.id)}
    assert object_key(scene.org.id, gone["id"]) not in keys
