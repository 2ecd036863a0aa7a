"""reminder plans, managers, snoozes and digests

- `certifications.reminder_plan`: the stages of reminders (automation.plans). Data migration:
  each certification's `notification_rules` become its plan, one stage per rule, keeping the
  rule's identity (the notifications' `rule_key`), so nothing already sent is sent again. The
  downgrade writes the stages a rule can express back into `notification_rules`.
- `notifications.repetition` joins the exactly-once key; `notifications.digest_id` names the
  digest that carries a reminder to a daily/weekly recipient.
- `digests` (one email per recipient and period) and `notification_preferences` (per email).
- `employees.manager_id` (composite foreign key: never another organization's employee),
  `locations.manager_ids`, the assignment's snooze, the organization's digest settings.

Revision ID: 0019
Revises: 0015
Create Date: 2026-11-30 07:00:00
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

OLD_KEY = ["org_id", "assignment_id", "rule_key", "cycle", "channel", "recipient"]
NEW_KEY = ["org_id", "assignment_id", "rule_key", "cycle", "repetition", "channel", "recipient"]


def _stamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


@contextmanager
def _quiet_reflection() -> Iterator[None]:
    """SQLite's batch mode reflects the tables a table refers to, and warns that it cannot
    reflect the certifications' expression index: harmless for tables it does not copy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        yield


def upgrade() -> None:
    with _quiet_reflection():
        _upgrade()


def downgrade() -> None:
    with _quiet_reflection():
        _downgrade()


def _upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("items", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        *_stamps(),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed')", name=op.f("ck_digests_status")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_digests_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_digests")),
    )
    op.create_index("uq_digests_period", "digests", ["org_id", "recipient", "period"], unique=True)
    op.create_index("ix_digests_org_created", "digests", ["org_id", "created_at", "id"])
    op.create_table(
        "notification_preferences",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("frequency", sa.String(length=16), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), server_default="0", nullable=False),
        *_stamps(),
        sa.CheckConstraint(
            "frequency IN ('immediate', 'daily', 'weekly')",
            name=op.f("ck_notification_preferences_frequency"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_notification_preferences_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("org_id", "email", name=op.f("pk_notification_preferences")),
    )
    for table in ("digests", "notification_preferences"):
        rls.enable(table)

    op.drop_index("uq_notifications_once", table_name="notifications")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("repetition", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("digest_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_notifications_org_id_digest_id_digests"),
            "digests",
            ["org_id", "digest_id"],
            ["org_id", "id"],
        )
        batch_op.create_index("ix_notifications_org_digest", ["org_id", "digest_id"])
        batch_op.create_index("uq_notifications_once", NEW_KEY, unique=True)

    with op.batch_alter_table("employees", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manager_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_employees_org_id_manager_id_employees"),
            "employees",
            ["org_id", "manager_id"],
            ["org_id", "id"],
        )
    # Plain ADD COLUMN: a batch copy would drop the expression indexes SQLite cannot reflect.
    op.add_column(
        "locations", sa.Column("manager_ids", sa.JSON(), server_default="[]", nullable=False)
    )
    op.add_column("assignments", sa.Column("snoozed_until", sa.Date(), nullable=True))
    op.add_column("assignments", sa.Column("snooze_reason", sa.Text(), nullable=True))
    op.add_column("assignments", sa.Column("snoozed_by", sa.String(length=200), nullable=True))
    op.add_column("assignments", sa.Column("snoozed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("certifications", sa.Column("reminder_plan", sa.JSON(), nullable=True))
    op.add_column(
        "organizations",
        sa.Column(
            "digest_frequency", sa.String(length=16), server_default="immediate", nullable=False
        ),
    )
    op.add_column(
        "organizations", sa.Column("digest_hour", sa.Integer(), server_default="8", nullable=False)
    )
    op.add_column(
        "organizations",
        sa.Column("digest_weekday", sa.Integer(), server_default="0", nullable=False),
    )
    _convert(_plan_from_rules, "notification_rules", "reminder_plan")


def _downgrade() -> None:
    _convert(_rules_from_plan, "reminder_plan", "notification_rules")
    for column in ("digest_weekday", "digest_hour", "digest_frequency"):
        op.drop_column("organizations", column)
    op.drop_column("certifications", "reminder_plan")
    for column in ("snoozed_at", "snoozed_by", "snooze_reason", "snoozed_until"):
        op.drop_column("assignments", column)
    op.drop_column("locations", "manager_ids")
    with op.batch_alter_table("employees", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("fk_employees_org_id_manager_id_employees"), type_="foreignkey"
        )
        batch_op.drop_column("manager_id")
    # Repetitions beyond the first cannot live under the old key: they go with the feature.
    op.execute(sa.text("DELETE FROM notifications WHERE repetition > 0"))
    op.drop_index("uq_notifications_once", table_name="notifications")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_org_digest")
        batch_op.drop_constraint(
            op.f("fk_notifications_org_id_digest_id_digests"), type_="foreignkey"
        )
        batch_op.drop_column("digest_id")
        batch_op.drop_column("repetition")
        batch_op.create_index("uq_notifications_once", OLD_KEY, unique=True)
    for table in ("digests", "notification_preferences"):
        rls.disable(table)
    op.drop_table("notification_preferences")
    op.drop_index("ix_digests_org_created", table_name="digests")
    op.drop_index("uq_digests_period", table_name="digests")
    op.drop_table("digests")


# --- the data migration: frozen copies of automation.plans' conversions ----------------------


def _plan_from_rules(rules: Any) -> Any:
    if not rules:
        return None
    stages = []
    for rule in rules:
        stage: dict[str, Any] = {
            "recipients": list(rule.get("recipients") or []),
            "channels": list(rule.get("channels") or ["email"]),
            "repeat_every_days": None,
            "max_repeats": 0,
        }
        if rule.get("trigger") == "before_expiry":
            stage = {"offset_days": -int(rule.get("days") or 0), **stage}
        else:
            stage = {"event": rule.get("trigger"), "offset_days": 0, **stage}
        stages.append(stage)
    return {"stages": stages, "stop_when": "renewed"}


def _rules_from_plan(plan: Any) -> Any:
    rules = []
    for stage in (plan or {}).get("stages") or []:
        recipients = stage.get("recipients") or []
        if stage.get("repeat_every_days") or any(
            r in ("manager", "location_managers", "custodian") for r in recipients
        ):
            continue
        event = stage.get("event", "expiry")
        if event == "expiry":
            if int(stage["offset_days"]) > 0:
                continue
            rule = {"trigger": "before_expiry", "days": -int(stage["offset_days"])}
        else:
            rule = {"trigger": event}
        rules.append({**rule, "recipients": recipients, "channels": stage.get("channels")})
    return rules


def _convert(convert: Any, source: str, target: str) -> None:
    """`target = convert(source)` on every certification of every org. FORCE row-level security
    binds the migrating owner too on PostgreSQL (and organizations are platform-only): the
    owner lifts FORCE on certifications for this transaction's UPDATEs and puts it back."""
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    if pg:
        op.execute("ALTER TABLE certifications NO FORCE ROW LEVEL SECURITY")
    rows = bind.execute(sa.text(f"SELECT id, {source} FROM certifications")).all()  # noqa: S608 - fixed column names
    value_sql = "CAST(:v AS JSON)" if pg else ":v"
    for cert_id, value in rows:
        data = json.loads(value) if isinstance(value, str) else value
        converted = convert(data) if data is not None else None
        if converted is None:
            continue  # no rules (upgrade) or no plan (downgrade): the rules stay as they are
        bind.execute(
            sa.text(f"UPDATE certifications SET {target} = {value_sql} WHERE id = :id"),  # noqa: S608 - fixed column names
            {"v": json.dumps(converted), "id": cert_id},
        )
    if pg:
        op.execute("ALTER TABLE certifications FORCE ROW LEVEL SECURITY")
