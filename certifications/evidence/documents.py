"""Documents per assignment cycle: upload (type by content, size, SHA-256, dedupe, quota),
list, read, soft delete.

A file reaches the service as a seekable file object the HTTP layer has already bounded (the
upload route's own body limit; werkzeug spools big parts to disk): one pass hashes and measures
it in chunks, a second streams it to the store. The object is written before the row, so a
failed write leaves no row; a row that never commits leaves an object the sweep removes.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import IO

import filetype
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.utils import secure_filename

from certifications.assignments.models import Assignment
from certifications.evidence.models import Document
from certifications.evidence.storage import CHUNK, DocumentStore, object_key
from certifications.vocabulary import DOCUMENT_TYPES
from infra.context import require_org_id
from infra.database import get_or_not_found
from infra.errors import DomainError, Invalid, NotFound

MAX_FILENAME = 200
# filetype's matchers read at most this many leading bytes.
SNIFF_BYTES = 261


class TooLarge(DomainError):
    http_status = 413


class UnsupportedType(DomainError):
    http_status = 415


@dataclass(frozen=True)
class Upload:
    """One file of a request: its bytes (seekable) and the name the client gave."""

    data: IO[bytes]
    filename: str | None


def sniff(data: IO[bytes]) -> tuple[str, str]:
    """(content type, extension) recognised from the leading bytes, or 415."""
    head = data.read(SNIFF_BYTES)
    data.seek(0)
    kind = filetype.guess(head)
    if kind is None or kind.mime not in DOCUMENT_TYPES:
        found = f" (found {kind.mime})" if kind is not None else ""
        raise UnsupportedType(
            f"Only PDF, PNG, JPEG, HEIC and WebP files are accepted{found}; "
            "the type is read from the content, not the file name.",
            {"file": [f"Must be one of {', '.join(DOCUMENT_TYPES)}."]},
        )
    return kind.mime, kind.extension


def measure(data: IO[bytes], limit: int) -> tuple[int, str]:
    """(size, sha256 hex) in one chunked pass; 413 past `limit` bytes."""
    digest = hashlib.sha256()
    size = 0
    while chunk := data.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        digest.update(chunk)
    data.seek(0)
    if size == 0:
        raise Invalid({"file": ["The file is empty."]})
    return size, digest.hexdigest()


def too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"The file is larger than the limit of {limit} bytes.",
        {"file": [f"At most {limit} bytes."]},
    )


def clean_filename(given: str | None, extension: str) -> str:
    """An ASCII name safe on every file system and in a header, ending in the real type's
    extension (a PDF called `x.exe` is served as `x.pdf`)."""
    stem = PurePath(secure_filename(given or "")).stem[:MAX_FILENAME] or "document"
    return f"{stem}.{extension}"


def used_bytes(session: Session) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Document.size), 0)).where(Document.deleted_at.is_(None))
        )
        or 0
    )


def store_document(
    session: Session,
    store: DocumentStore,
    assignment: Assignment,
    upload: Upload,
    *,
    cycle: int | None,
    max_bytes: int,
    quota_bytes: int,
    actor: str,
    now: datetime,
    submission_id: uuid.UUID | None = None,
) -> tuple[Document, bool]:
    """Store one file on `cycle` (the current one by default): (document, created).

    The same bytes already on that cycle answer the existing document (created False).
    """
    cycle = assignment.cycle if cycle is None else cycle
    if not 1 <= cycle <= assignment.cycle:
        raise Invalid({"cycle": [f"Must be between 1 and the current cycle ({assignment.cycle})."]})
    content_type, extension = sniff(upload.data)
    size, sha256 = measure(upload.data, max_bytes)
    existing = _same_bytes(session, assignment.id, cycle, sha256)
    if existing is not None:
        return existing, False
    used = used_bytes(session)
    if quota_bytes and used + size > quota_bytes:
        raise TooLarge(
            f"The organization's document storage quota of {quota_bytes} bytes is used up "
            f"({used} bytes stored; this file needs {size}). Delete documents or ask the "
            "operator to raise DOCUMENT_ORG_QUOTA_BYTES.",
            {"file": ["Over the organization's storage quota."]},
        )
    document_id = uuid.uuid4()
    key = object_key(require_org_id(), document_id)
    store.put(key, upload.data, content_type)  # raises: no row is written
    document = Document(
        id=document_id,
        assignment_id=assignment.id,
        cycle=cycle,
        submission_id=submission_id,
        filename=clean_filename(upload.filename, extension),
        content_type=content_type,
        size=size,
        sha256=sha256,
        storage_key=key,
        uploaded_by=actor,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(document)
            session.flush()
    except IntegrityError:  # the same bytes, uploaded concurrently: theirs won
        store.delete(key)
        winner = _same_bytes(session, assignment.id, cycle, sha256)
        if winner is None:
            raise
        return winner, False
    return document, True


def _same_bytes(
    session: Session, assignment_id: uuid.UUID, cycle: int, sha256: str
) -> Document | None:
    return session.scalar(
        select(Document).where(
            Document.assignment_id == assignment_id,
            Document.cycle == cycle,
            Document.sha256 == sha256,
            Document.deleted_at.is_(None),
        )
    )


def get_document(session: Session, document_id: uuid.UUID) -> Document:
    """A live document (a deleted one is 404 like a foreign one)."""
    document = get_or_not_found(session, Document, document_id, "document")
    if document.deleted_at is not None:
        raise NotFound("document", document_id)
    return document


def list_documents(session: Session, assignment_id: uuid.UUID) -> list[Document]:
    return list(
        session.scalars(
            select(Document)
            .where(Document.assignment_id == assignment_id, Document.deleted_at.is_(None))
            .order_by(Document.cycle.desc(), Document.created_at, Document.id)
        )
    )


def delete_document(session: Session, document: Document, *, actor: str, now: datetime) -> Document:
    """Soft: the row stays (who, when, which bytes) and the audit trail records it; the sweep
    removes the bytes."""
    document.deleted_at = now
    document.deleted_by = actor
    document.updated_at = now
    session.flush()
    return document
