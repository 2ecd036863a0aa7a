"""Domain errors: raised by services, mapped to HTTP by `api.errors` (and logged by workers)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    http_status = 400
    code_name: str | None = None

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class NotFound(DomainError):
    """The id does not exist in this organization (another org's ids look the same)."""

    http_status = 404

    def __init__(self, entity: str, entity_id: object = None) -> None:
        suffix = f" {entity_id}" if entity_id is not None else ""
        super().__init__(f"{entity}{suffix} not found")


class Conflict(DomainError):
    http_status = 409


class Invalid(DomainError):
    """Field-level validation that needs the database (unknown ids, cross-field rules)."""

    http_status = 422

    def __init__(self, errors: dict[str, Any], message: str | None = None) -> None:
        fields = ", ".join(sorted(errors))
        super().__init__(message or f"Invalid value for: {fields}", errors)


class Unauthorized(DomainError):
    """No usable credentials: missing, malformed, expired, tampered, or an unknown org."""

    http_status = 401


class Forbidden(DomainError):
    """Valid credentials that lack a scope, or an organization without the module."""

    http_status = 403

    def __init__(
        self, message: str, code_name: str | None = None, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, errors)
        self.code_name = code_name


class PreconditionFailed(DomainError):
    """An `If-Match` that names another version of the resource (a lost update averted)."""

    http_status = 412


class PreconditionRequired(DomainError):
    """The organization requires conditional writes and the request sent no `If-Match`."""

    http_status = 428
