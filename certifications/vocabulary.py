"""The domain's words, each defined once: statuses, subject kinds, rule triggers, channels, limits.

The models build their CHECK constraints from these tuples (`infra.database.check_in`), the API
schemas their `OneOf` validators and documented enums, the rules and the status computation
their comparisons. Adding a value here changes the CHECK constraint too: that needs a migration.
"""

from __future__ import annotations

# --- assignments -----------------------------------------------------------------------------

# An assignment's stored status (SPEC §4; `assignments.status` says which applies when).
VALID = "valid"
UPCOMING = "upcoming"
MISSING = "missing"
EXPIRES_SOON = "expires_soon"
EXPIRED = "expired"
REVOKED = "revoked"
STATUSES = (VALID, UPCOMING, MISSING, EXPIRES_SOON, EXPIRED, REVOKED)
# Statuses that count as compliant: expiring soon is still valid.
COMPLIANT_STATUSES = (VALID, EXPIRES_SOON)

# How an assignment came to be: assigned by hand, or by the role fan-out.
ASSIGNMENT_SOURCES = ("manual", "role")

# What certifications attach to; a certification's `type` is the kind of subject it applies to.
SUBJECT_KINDS = ("employee", "asset", "client", "location")
CERTIFICATION_TYPES = SUBJECT_KINDS

# --- rules -----------------------------------------------------------------------------------

# Ten years: bounds every number of days a client sets (a notification rule's `days`, a task
# rule's `days_before_expiry`, a certification's `warning_days`).
MAX_DAYS = 3650

# A notification rule's trigger; `before_expiry` takes a number of days.
BEFORE_EXPIRY = "before_expiry"
TRIGGERS = (BEFORE_EXPIRY, EXPIRED, REVOKED, MISSING)
# Triggers of the review queue (certifications.evidence): not rules, one notice per event.
SUBMISSION_PENDING = "submission_pending"
SUBMISSION_APPROVED = "submission_approved"
SUBMISSION_REJECTED = "submission_rejected"
SUBMISSION_TRIGGERS = (SUBMISSION_PENDING, SUBMISSION_APPROVED, SUBMISSION_REJECTED)
CHANNELS = ("email", "webhook")
# A notification rule's recipients: these words, or an email address.
HOLDER = "holder"
ADMINS = "admins"
RECIPIENT_WORDS = (HOLDER, ADMINS)
# A reminder plan stage's recipients (certifications.automation.plans): these words, or an
# email address. `manager`: the employee's manager; `location_managers`: a location's managers;
# `custodian`: an asset's custodian (resolves to nobody until assets have a custodian).
MANAGER = "manager"
LOCATION_MANAGERS = "location_managers"
CUSTODIAN = "custodian"
STAGE_RECIPIENT_WORDS = (HOLDER, MANAGER, LOCATION_MANAGERS, CUSTODIAN, ADMINS)
# How a notification's recipient was chosen (the holder without an address falls back to the
# admins; the webhook channel has one recipient, the org's webhook).
RECIPIENT_SOURCES = (
    HOLDER,
    ADMINS,
    "address",
    "holder_fallback_admins",
    "webhook",
    "reviewers",
    MANAGER,
    LOCATION_MANAGERS,
    CUSTODIAN,
)
# What a reminder plan stage counts from: the expiry date (`offset_days` before or after it),
# or a status the assignment has (`expired`, `revoked`, `missing`; a rule's triggers).
STAGE_EVENTS = ("expiry", EXPIRED, REVOKED, MISSING)
# When a plan's reminders stop: at the renewal (a new cycle), or also while a submission waits
# for review.
STOP_WHEN = ("renewed", SUBMISSION_PENDING)
# How a recipient gets its email reminders: one by one, or one digest a day / a week.
DIGEST_FREQUENCIES = ("immediate", "daily", "weekly")
DIGEST_STATUSES = ("pending", "sending", "sent", "failed")

# --- automation ------------------------------------------------------------------------------

NOTIFICATION_STATUSES = ("pending", "sending", "sent", "failed", "cancelled")
# What `POST /notifications/{id}/retry` sends again.
RETRYABLE_NOTIFICATION_STATUSES = ("failed", "cancelled")
TASK_STATUSES = ("open", "done", "closed", "cancelled")
# What a user may set a task to (complete, reopen, cancel); `closed` comes from a renewal or
# revocation.
SETTABLE_TASK_STATUSES = ("open", "done", "cancelled")

# --- evidence --------------------------------------------------------------------------------

SUBMISSION_STATUSES = ("pending", "approved", "rejected")
# What an uploaded file may be, recognised by its content (certifications.evidence.documents).
DOCUMENT_TYPES = ("application/pdf", "image/png", "image/jpeg", "image/heic", "image/webp")
