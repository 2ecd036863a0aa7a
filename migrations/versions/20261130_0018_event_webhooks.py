"""event webhooks: endpoints, the event outbox (batches), events, deliveries, and the triggers

Triggers write the outbox in the statement that makes the change, so it commits with it, and
set-based (PostgreSQL: one statement-level trigger per change reading the statement's transition
table, writing ONE batch row per statement; SQLite: row triggers, a batch per row, its writers
being serialized anyway). A status change's batch holds compact arrays (a recompute of 100,000
rows writes one row); the other kinds carry their events as objects:

* `status_events` INSERT → `assignment.status_changed` (or `assignment.revoked` for a change to
  revoked); the event id is the status event's id;
* `assignments` INSERT → `assignment.created`; DELETE → `assignment.deleted`;
* `assignment_cycles` INSERT (a renewal closes the current cycle) → `assignment.renewed`;
* `submissions` INSERT as pending → `submission.pending`; UPDATE out of pending →
  `submission.decided`.

Each trigger writes only for an organization with an enabled endpoint (subscribed to the type,
for the inline kinds). Delivery rounds turn batches into `webhook_events` and one
`webhook_deliveries` row per subscribed endpoint (`certifications.webhooks.dispatch`).

Revision ID: 0018
Revises: 0015
Create Date: 2026-11-30 07:00:00
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TABLES = ("webhook_batches", "webhook_endpoints", "webhook_events", "webhook_deliveries")
EVENT_TYPES = (
    "assignment.status_changed",
    "assignment.created",
    "assignment.renewed",
    "assignment.revoked",
    "assignment.deleted",
    "submission.pending",
    "submission.decided",
)


class Emitter(NamedTuple):
    """One trigger: `r` is the new row (or the old one for a delete), `o` the old row of an update.

    Expressions are written once for both dialects; `{json}`, `{uuid}`, `{now}`, `{strpos}` and
    `{distinct}` are filled per dialect."""

    name: str
    table: str
    operation: str  # INSERT, DELETE, UPDATE
    type_sql: str
    where: str
    event_id: str
    assignment_id: str
    payload: tuple[tuple[str, str], ...]
    occurred_at: str


EMITTERS = (
    Emitter(
        "status_events_webhooks",
        "status_events",
        "INSERT",
        "CASE WHEN r.to_status = 'revoked' THEN 'assignment.revoked'"
        " ELSE 'assignment.status_changed' END",
        "r.from_status {distinct} r.to_status",
        "r.id",
        "r.assignment_id",
        (
            ("assignment_id", "r.assignment_id"),
            ("cycle", "r.cycle"),
            ("from_status", "r.from_status"),
            ("to_status", "r.to_status"),
            ("on_date", "r.on_date"),
        ),
        "r.created_at",
    ),
    Emitter(
        "assignments_created_webhooks",
        "assignments",
        "INSERT",
        "'assignment.created'",
        "1 = 1",
        "{uuid}",
        "r.id",
        (
            ("assignment_id", "r.id"),
            ("certification_id", "r.certification_id"),
            ("subject_type", "r.subject_type"),
            ("subject_id", "r.subject_id"),
            ("source", "r.source"),
            ("status", "r.status"),
            ("cycle", "r.cycle"),
            ("issued_on", "r.issued_on"),
            ("expires_on", "r.expires_on"),
        ),
        "r.created_at",
    ),
    Emitter(
        "assignments_deleted_webhooks",
        "assignments",
        "DELETE",
        "'assignment.deleted'",
        "1 = 1",
        "{uuid}",
        "r.id",
        (
            ("assignment_id", "r.id"),
            ("certification_id", "r.certification_id"),
            ("subject_type", "r.subject_type"),
            ("subject_id", "r.subject_id"),
            ("status", "r.status"),
            ("cycle", "r.cycle"),
        ),
        "{now}",
    ),
    Emitter(
        "assignment_cycles_webhooks",
        "assignment_cycles",
        "INSERT",
        "'assignment.renewed'",
        "1 = 1",
        "{uuid}",
        "r.assignment_id",
        (
            ("assignment_id", "r.assignment_id"),
            ("previous_cycle", "r.cycle"),
            ("cycle", "r.cycle + 1"),
            ("previous_issued_on", "r.issued_on"),
            ("previous_expires_on", "r.expires_on"),
        ),
        "COALESCE(r.closed_at, r.created_at)",
    ),
    Emitter(
        "submissions_pending_webhooks",
        "submissions",
        "INSERT",
        "'submission.pending'",
        "r.status = 'pending'",
        "{uuid}",
        "r.assignment_id",
        (
            ("submission_id", "r.id"),
            ("assignment_id", "r.assignment_id"),
            ("cycle", "r.cycle"),
            ("issued_on", "r.issued_on"),
            ("expires_on", "r.expires_on"),
        ),
        "r.created_at",
    ),
    Emitter(
        "submissions_decided_webhooks",
        "submissions",
        "UPDATE",
        "'submission.decided'",
        "o.status = 'pending' AND r.status <> 'pending'",
        "{uuid}",
        "r.assignment_id",
        (
            ("submission_id", "r.id"),
            ("assignment_id", "r.assignment_id"),
            ("cycle", "r.cycle"),
            ("status", "r.status"),
            ("reason", "r.reason"),
        ),
        "COALESCE(r.reviewed_at, {now})",
    ),
)

PG = {
    "json": "json_build_object",
    "uuid": "gen_random_uuid()",
    "now": "now()",
    "strpos": "strpos",
    "distinct": "IS DISTINCT FROM",
}
SQLITE = {
    "json": "json_object",
    "uuid": "lower(hex(randomblob(16)))",
    # SQLAlchemy's SQLite DATETIME text, microseconds included.
    "now": "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')",
    "strpos": "instr",
    "distinct": "IS NOT",
}


def _subscribed(d: dict[str, str], org: str, type_sql: str) -> str:
    """The enabled endpoints of `org` subscribed to the event type (`w`)."""
    return (
        f"w.org_id = {org} AND w.disabled_at IS NULL AND (w.event_filter = '*'"
        f" OR {d['strpos']}(w.event_filter, '|' || {type_sql} || '|') > 0)"
    )


def _event_json(e: Emitter, d: dict[str, str]) -> str:
    """One event of an inline batch, as JSON, from `r` (and `o`)."""

    def fill(sql: str) -> str:
        return sql.format(**d)

    data = ", ".join(f"'{k}', {fill(v)}" for k, v in e.payload)
    return (
        f"{d['json']}('id', {fill(e.event_id)}, 'type', {fill(e.type_sql)}, "
        f"'assignment_id', {e.assignment_id}, 'occurred_at', {fill(e.occurred_at)}, "
        f"'data', {d['json']}({data}))"
    )


# A status change in a `status` batch: [id, assignment_id, cycle, from, to, on_date, at].
STATUS_ITEM = "r.id, r.assignment_id, r.cycle, r.from_status, r.to_status, r.on_date, r.created_at"


def _is_status(e: Emitter) -> bool:
    return e.table == "status_events"


def _any_endpoint(org: str) -> str:
    return f"SELECT 1 FROM webhook_endpoints w WHERE w.org_id = {org} AND w.disabled_at IS NULL"


def _pg_function(e: Emitter) -> str:
    d = PG
    source = "new_rows r" if e.operation != "DELETE" else "old_rows r"
    if e.operation == "UPDATE":
        source = "new_rows r JOIN old_rows o ON o.org_id = r.org_id AND o.id = r.id"
    where = e.where.format(**d)
    order = f"{e.occurred_at.format(**d)}, r.id"
    if _is_status(e):  # compact rows: the events are built from them by the round
        kind, items = "status", f"json_agg(json_build_array({STATUS_ITEM}) ORDER BY {order})"
        wanted = _any_endpoint("r.org_id")
    else:
        kind, items = "inline", f"json_agg({_event_json(e, d)} ORDER BY {order})"
        wanted = f"SELECT 1 FROM webhook_endpoints w WHERE {_subscribed(d, 'r.org_id', e.type_sql)}"
    return f"""
CREATE FUNCTION certs_{e.name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE disabled_at IS NULL) THEN
    RETURN NULL;
  END IF;
  INSERT INTO webhook_batches (org_id, id, kind, items, created_at)
  SELECT r.org_id, gen_random_uuid(), '{kind}', {items}, now()
  FROM {source}
  WHERE ({where}) AND EXISTS ({wanted})
  GROUP BY r.org_id;
  RETURN NULL;
END
$fn$
"""


def _pg_trigger(e: Emitter) -> str:
    referencing = {
        "INSERT": "REFERENCING NEW TABLE AS new_rows",
        "DELETE": "REFERENCING OLD TABLE AS old_rows",
        "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    }[e.operation]
    return (
        f"CREATE TRIGGER {e.name} AFTER {e.operation} ON {e.table} {referencing}"
        f" FOR EACH STATEMENT EXECUTE FUNCTION certs_{e.name}()"
    )


def _sqlite_trigger(e: Emitter) -> str:
    d = SQLITE
    row = "OLD" if e.operation == "DELETE" else "NEW"

    def rows(sql: str) -> str:  # the aliases used are r, o and w only
        return sql.replace("r.", f"{row}.").replace("o.", "OLD.")

    if _is_status(e):
        kind, items = "status", f"json_array(json_array({STATUS_ITEM}))"
        wanted = _any_endpoint("r.org_id")
    else:
        kind, items = "inline", f"json_array({_event_json(e, d)})"
        wanted = f"SELECT 1 FROM webhook_endpoints w WHERE {_subscribed(d, 'r.org_id', e.type_sql)}"
    when = rows(f"({e.where.format(**d)}) AND EXISTS ({wanted})")
    return f"""
CREATE TRIGGER {e.name} AFTER {e.operation} ON {e.table}
WHEN {when}
BEGIN
  INSERT INTO webhook_batches (org_id, id, seq, kind, items, created_at)
  SELECT {row}.org_id, {d["uuid"]}, (SELECT COALESCE(MAX(seq), 0) + 1 FROM webhook_batches),
    '{kind}', {rows(items)}, {d["now"]};
END
"""


def _stamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "webhook_batches",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("kind IN ('status', 'inline')", name=op.f("ck_webhook_batches_kind")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_webhook_batches_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_webhook_batches")),
    )
    op.create_index("ix_webhook_batches_org_seq", "webhook_batches", ["org_id", "seq"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("event_filter", sa.String(length=1000), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        _stamp("previous_secret_expires_at", True),
        _stamp("disabled_at", True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        _stamp("failing_since", True),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _stamp("retry_at", True),
        _stamp("leased_until", True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_webhook_endpoints_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        "ix_webhook_endpoints_enabled",
        "webhook_endpoints",
        ["org_id"],
        postgresql_where=sa.text("disabled_at IS NULL"),
        sqlite_where=sa.text("disabled_at IS NULL"),
    )
    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    op.create_table(
        "webhook_events",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            nullable=False,
        ),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("assignment_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column(
            "occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(f"type IN ({types})", name=op.f("ck_webhook_events_type")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_webhook_events_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_webhook_events")),
    )
    op.create_index("uq_webhook_events_seq", "webhook_events", ["seq"], unique=True)
    op.create_index("ix_webhook_events_org_seq", "webhook_events", ["org_id", "seq"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _stamp("last_attempt_at", True),
        _stamp("delivered_at", True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "endpoint_id"],
            ["webhook_endpoints.org_id", "webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_org_id_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "event_id"],
            ["webhook_events.org_id", "webhook_events.id"],
            name=op.f("fk_webhook_deliveries_org_id_event_id_webhook_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_webhook_deliveries_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "uq_webhook_deliveries_endpoint_event",
        "webhook_deliveries",
        ["org_id", "endpoint_id", "event_id"],
        unique=True,
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_seq", "webhook_deliveries", ["org_id", "endpoint_id", "seq"]
    )
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["org_id", "endpoint_id", "seq"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    for table in TABLES:
        rls.enable(table)
    postgres = op.get_bind().dialect.name == "postgresql"
    for emitter in EMITTERS:
        if postgres:
            op.execute(_pg_function(emitter))
            op.execute(_pg_trigger(emitter))
        else:
            op.execute(_sqlite_trigger(emitter))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for emitter in EMITTERS:
        op.execute(
            f"DROP TRIGGER IF EXISTS {emitter.name}" + (f" ON {emitter.table}" if postgres else "")
        )
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS certs_{emitter.name}()")
    for table in reversed(TABLES):
        rls.disable(table)
        op.drop_table(table)
