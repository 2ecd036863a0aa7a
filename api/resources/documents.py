"""Documents: the evidence files of an assignment's cycles (upload, list, read, delete)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from flask import current_app, redirect
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.wrappers import Response

from api.db import request_session
from api.schemas.evidence import UPLOAD_BODY, DocumentListSchema, DocumentSchema, UploadFormSchema
from api.uploads import file_parts, form_data
from certifications.assignments import service as assignments
from certifications.evidence import documents
from certifications.evidence.storage import CHUNK, DocumentStore, attachment, document_store
from infra.database import utcnow
from infra.settings import Settings
from tenancy.auth import current_subject, requires

blp = Blueprint("documents", __name__, url_prefix="", description="Evidence documents")


def settings() -> Settings:
    return current_app.config["CERTS_SETTINGS"]  # type: ignore[no-any-return]


def store() -> DocumentStore:
    return document_store(settings())


@blp.route("/assignments/<uuid:assignment_id>/documents")
class AssignmentDocuments(MethodView):
    takes_upload = True  # api.limits: DOCUMENT_MAX_BYTES, not MAX_REQUEST_BYTES
    created_location = "/documents/{id}"

    @requires("certifications:update", module="hse")
    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.response(201, DocumentSchema)
    @blp.alt_response(200, schema=DocumentSchema, description="The same file was already there")
    @blp.alt_response(413, description="Larger than DOCUMENT_MAX_BYTES, or over the org's quota")
    @blp.alt_response(415, description="Not a PDF, PNG, JPEG, HEIC or WebP file")
    def post(self, assignment_id: uuid.UUID) -> Any:
        """Attach a certificate file (multipart `file`, optional `cycle`) to a cycle.

        The type is read from the content; the same bytes on the same cycle answer the
        existing document (200) instead of a new one (201).
        """
        session = request_session()
        assignment = assignments.get_assignment(session, assignment_id)
        data = form_data(UploadFormSchema)
        (upload,) = file_parts(required=True)
        s = settings()
        document, created = documents.store_document(
            session,
            store(),
            assignment,
            upload,
            cycle=data.get("cycle"),
            max_bytes=s.document_max_bytes,
            quota_bytes=s.document_org_quota_bytes,
            actor=current_subject(),
            now=utcnow(),
        )
        return document, 201 if created else 200

    @requires("certifications:read", module="hse")
    @blp.response(200, DocumentListSchema)
    def get(self, assignment_id: uuid.UUID) -> Any:
        """The assignment's documents, newest cycle first (deleted ones are not listed)."""
        session = request_session()
        assignments.get_assignment(session, assignment_id)
        return {"items": documents.list_documents(session, assignment_id)}


@blp.route("/documents/<uuid:document_id>")
class DocumentResource(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, DocumentSchema)
    def get(self, document_id: uuid.UUID) -> Any:
        """One document's metadata (name, type, size, SHA-256, cycle)."""
        return documents.get_document(request_session(), document_id)

    @requires("certifications:delete", module="hse")
    @blp.response(204)
    def delete(self, document_id: uuid.UUID) -> Any:
        """Delete a document: the record stays (audited), the bytes are removed by the sweep."""
        session = request_session()
        document = documents.get_document(session, document_id)
        documents.delete_document(session, document, actor=current_subject(), now=utcnow())
        return None


def _chunks(store: DocumentStore, key: str) -> Iterator[bytes]:
    """The stored bytes in 1 MB chunks; the file is opened when the server starts sending and
    closed when it is done (or gives up), never held whole in memory."""
    with store.open(key) as data:
        while chunk := data.read(CHUNK):
            yield chunk


@blp.route("/documents/<uuid:document_id>/content")
class DocumentContent(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, description="The file (embedded storage)")
    @blp.alt_response(302, description="A short-lived signed URL of the object store")
    def get(self, document_id: uuid.UUID) -> Any:
        """The file itself, as an attachment (or a redirect to a short-lived signed URL)."""
        document = documents.get_document(request_session(), document_id)
        target = store()
        url = target.signed_url(document.storage_key, document.filename, document.content_type)
        response: Response
        if url is not None:
            response = redirect(url, code=302)
        else:
            response = Response(
                _chunks(target, document.storage_key),
                mimetype=document.content_type,
                direct_passthrough=True,
            )
            response.headers["Content-Disposition"] = attachment(document.filename)
            response.headers["Content-Length"] = str(document.size)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response
