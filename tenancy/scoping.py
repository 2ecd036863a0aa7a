"""Tenant scoping of every ORM session, in one place.

* ORM reads, lazy loads, `Session.get` and ORM bulk UPDATE/DELETE of tenant tables get
  `org_id = <current tenant>` added (SQLAlchemy's `with_loader_criteria` recipe). With no tenant
  in context they match nothing: scoping fails closed.
* New tenant rows get the current `org_id`; a row naming another org is refused.
* On PostgreSQL each transaction sets `app.org_id` (transaction-local), which the RLS policies
  read, so Core and text SQL that forgot the filter still see only the current org.

`execution_options(all_tenants=True)` is the explicit, rare opt-out (never used by the API).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, false, text
from sqlalchemy.orm import (
    ORMExecuteState,
    Session,
    SessionTransaction,
    sessionmaker,
    with_loader_criteria,
)

from infra.context import current_org_id, in_platform_context
from tenancy.models import TenantScoped

# Flipped only by the defense-in-depth tests, to prove RLS holds on its own.
ORM_FILTER_ENABLED = True


class TenantMismatch(RuntimeError):
    """A write named an organization other than the one in context."""


def _scope_to_tenant(state: ORMExecuteState) -> None:
    if not ORM_FILTER_ENABLED:
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the criteria already travel with the parent load's options
    if state.execution_options.get("all_tenants", False):
        return
    org_id = current_org_id()  # read here: a contextvar inside the lambda raises
    if org_id is None:
        criteria = with_loader_criteria(TenantScoped, lambda cls: false(), include_aliases=True)
    else:
        criteria = with_loader_criteria(
            TenantScoped, lambda cls: cls.org_id == org_id, include_aliases=True
        )
    state.statement = state.statement.options(criteria)


def _stamp_new_rows(session: Session, _ctx: Any, _instances: Any) -> None:
    org_id = current_org_id()
    for obj in session.new:
        if not isinstance(obj, TenantScoped):
            continue
        if obj.org_id is None:
            if org_id is None:
                raise TenantMismatch(f"cannot insert {type(obj).__name__} without a tenant")
            obj.org_id = org_id
        elif org_id is not None and obj.org_id != org_id:
            raise TenantMismatch(f"{type(obj).__name__} names another organization")


def _rls_setter(platform_key: str) -> Any:
    """The after-begin hook: `app.org_id`, and `app.platform` = the platform key in platform
    context (the policies accept the key's digest, never a mere 'on'; see tenancy/rls.py)."""

    def _set_rls_tenant(session: Session, _tx: SessionTransaction, connection: Any) -> None:
        if connection.dialect.name != "postgresql":
            return
        org_id = current_org_id()
        connection.execute(
            text(
                "SELECT set_config('app.org_id', :org, true), set_config('app.platform', :p, true)"
            ),
            {
                "org": str(org_id) if org_id else "",
                "p": platform_key if in_platform_context() else "",
            },
        )

    return _set_rls_tenant


def install_tenant_scoping(factory: sessionmaker[Session], platform_key: str) -> None:
    """Scope every session this factory makes to the tenant in context (see the module doc).

    `platform_key` is what platform-context transactions present to RLS on PostgreSQL (the
    first of `Settings.db_platform_keys`).
    """
    event.listen(factory, "do_orm_execute", _scope_to_tenant)
    event.listen(factory, "before_flush", _stamp_new_rows)
    event.listen(factory, "after_begin", _rls_setter(platform_key))
