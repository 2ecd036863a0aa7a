"""requirement sources: several roles per employee, dated memberships, asset links, site sources

- `employee_roles`: every role of an employee (position 0 is the one `employees.role_id`
  keeps for compatibility); existing employees' `role_id` is copied in.
- `memberships`: an employee on a location's roster or a client's workforce between two dates.
- `assets` gain `category` (free text), `location_id` and `custodian_id` (an employee).
- `certification_locations` and `certification_categories`: requirement sources of a
  certification besides its roles and clients; `certifications.applies_to_all` (every client or
  every location).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 06:30:00
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = ("employee_roles", "memberships", "certification_locations", "certification_categories")

COPY_ROLES = (
    "INSERT INTO employee_roles (org_id, employee_id, role_id, position) "
    "SELECT org_id, id, role_id, 0 FROM employees WHERE role_id IS NOT NULL"
)


@contextmanager
def _quiet_reflection() -> Iterator[None]:
    """SQLite's batch mode reflects referenced tables and warns about the expression indexes it
    cannot read: harmless for the tables it does not copy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        yield


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.Constraint:
    return sa.ForeignKeyConstraint(
        ["org_id", column],
        [f"{target}.org_id", f"{target}.id"],
        name=op.f(f"fk_{table}_org_id_{column}_{target}"),
        ondelete=ondelete,
    )


def _org_fk(table: str) -> sa.Constraint:
    return sa.ForeignKeyConstraint(
        ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations")
    )


def upgrade() -> None:
    with _quiet_reflection():
        _upgrade()


def _upgrade() -> None:
    op.create_table(
        "employee_roles",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("employee_id", sa.Uuid(), nullable=False),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _fk("employee_roles", "employee_id", "employees", "CASCADE"),
        _fk("employee_roles", "role_id", "roles"),
        _org_fk("employee_roles"),
        sa.PrimaryKeyConstraint("org_id", "employee_id", "role_id", name=op.f("pk_employee_roles")),
    )
    op.create_index("ix_employee_roles_role", "employee_roles", ["org_id", "role_id"])

    op.create_table(
        "memberships",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("employee_id", sa.Uuid(), nullable=False),
        sa.Column("location_id", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "(location_id IS NULL) <> (client_id IS NULL)", name=op.f("ck_memberships_one_target")
        ),
        sa.CheckConstraint(
            "starts_on IS NULL OR ends_on IS NULL OR starts_on <= ends_on",
            name=op.f("ck_memberships_dates_ordered"),
        ),
        _fk("memberships", "employee_id", "employees"),
        _fk("memberships", "location_id", "locations"),
        _fk("memberships", "client_id", "clients"),
        _org_fk("memberships"),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_memberships")),
    )
    op.create_index(
        "ix_memberships_location", "memberships", ["org_id", "location_id", "employee_id"]
    )
    op.create_index("ix_memberships_client", "memberships", ["org_id", "client_id", "employee_id"])
    op.create_index("ix_memberships_employee", "memberships", ["org_id", "employee_id"])

    op.create_table(
        "certification_locations",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("location_id", sa.Uuid(), nullable=False),
        _fk("certification_locations", "certification_id", "certifications", "CASCADE"),
        _fk("certification_locations", "location_id", "locations"),
        _org_fk("certification_locations"),
        sa.PrimaryKeyConstraint(
            "org_id", "certification_id", "location_id", name=op.f("pk_certification_locations")
        ),
    )
    op.create_index(
        "ix_certification_locations_location",
        "certification_locations",
        ["org_id", "location_id"],
    )
    op.create_table(
        "certification_categories",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        _fk("certification_categories", "certification_id", "certifications", "CASCADE"),
        _org_fk("certification_categories"),
        sa.PrimaryKeyConstraint(
            "org_id", "certification_id", "category", name=op.f("pk_certification_categories")
        ),
    )
    for table in TABLES:
        rls.enable(table)

    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("location_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("custodian_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_assets_org_id_location_id_locations"),
            "locations",
            ["org_id", "location_id"],
            ["org_id", "id"],
        )
        batch_op.create_foreign_key(
            op.f("fk_assets_org_id_custodian_id_employees"),
            "employees",
            ["org_id", "custodian_id"],
            ["org_id", "id"],
        )
        batch_op.create_index("ix_assets_org_location", ["org_id", "location_id"], unique=False)
    # Plain ADD COLUMN: a batch copy of certifications would drop its lower(name) index.
    op.add_column(
        "certifications",
        sa.Column("applies_to_all", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    _copy_roles()


def _copy_roles() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute(COPY_ROLES)
        return
    # FORCE row-level security binds the migrating owner too: one organization at a time.
    op.execute(
        f"""
        DO $$
        DECLARE o uuid;
        BEGIN
          FOR o IN SELECT id FROM organizations LOOP
            PERFORM set_config('app.org_id', o::text, true);
            {COPY_ROLES} AND org_id = o;
          END LOOP;
          PERFORM set_config('app.org_id', '', true);
        END $$
        """
    )


def downgrade() -> None:
    with _quiet_reflection():
        _downgrade()


def _downgrade() -> None:
    op.drop_column("certifications", "applies_to_all")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index("ix_assets_org_location")
        batch_op.drop_constraint(
            op.f("fk_assets_org_id_custodian_id_employees"), type_="foreignkey"
        )
        batch_op.drop_constraint(op.f("fk_assets_org_id_location_id_locations"), type_="foreignkey")
        batch_op.drop_column("custodian_id")
        batch_op.drop_column("location_id")
        batch_op.drop_column("category")
    for table in TABLES:
        rls.disable(table)
    op.drop_table("certification_categories")
    op.drop_index("ix_certification_locations_location", table_name="certification_locations")
    op.drop_table("certification_locations")
    op.drop_index("ix_memberships_employee", table_name="memberships")
    op.drop_index("ix_memberships_client", table_name="memberships")
    op.drop_index("ix_memberships_location", table_name="memberships")
    op.drop_table("memberships")
    op.drop_index("ix_employee_roles_role", table_name="employee_roles")
    op.drop_table("employee_roles")
