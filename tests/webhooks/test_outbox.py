"""The event outbox is written by the statement that changes statuses, set-based, and only for
an organization with an enabled endpoint; a rollback takes it back."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from certifications.assignments.models import StatusEvent
from certifications.assignments.recompute import recompute_statuses
from certifications.webhooks.dispatch import dispatch
from certifications.webhooks.models import WebhookBatch, WebhookDelivery, WebhookEvent
from infra import database as db
from tenancy.organizations import org_today
from tests.support.factories import build_webhook


def _soon_expiring(org, make_certification, make_employees, make_assignment, n):
    cert = make_certification(org, validity_months=12, warning_days=30)
    expires = org_today("UTC", db.utcnow()) + timedelta(days=20)
    for emp in make_employees(org, n):
        # Stored as valid: the recompute finds them expiring soon.
        make_assignment(
            cert, emp, issued_on=expires - timedelta(days=365), expires_on=expires, status="valid"
        )


def _recompute(as_tenant, org, commit=True):
    with as_tenant(org.id) as s:
        changed = recompute_statuses(s, org.id, org_today("UTC", db.utcnow()))
        batches = s.scalars(select(WebhookBatch)).all()
        ids = {str(e.id).replace("-", "") for e in s.scalars(select(StatusEvent))}
        items = [str(i[0]).replace("-", "") for b in batches for i in b.items]
        kinds = {b.kind for b in batches}
        (s.commit if commit else s.rollback)()
        return changed, len(batches), items, ids, kinds


def test_a_recompute_writes_its_status_changes_to_the_outbox_in_its_statements(
    org, as_tenant, backend, make_certification, make_employees, make_assignment
):
    _soon_expiring(org, make_certification, make_employees, make_assignment, 30)
    with as_tenant(org.id) as s:
        build_webhook(s, events=["*"], event_filter="*")
        s.commit()
    changed, batches, items, ids, kinds = _recompute(as_tenant, org)
    assert changed == 30
    assert sorted(items) == sorted(ids)  # every status change, once
    assert kinds == {"status"}
    # PostgreSQL: one row for the recompute's one statement; SQLite: row triggers, one per row.
    assert batches == (1 if backend.is_postgres else 30)

    with as_tenant(org.id) as s:
        while dispatch(s):
            pass
        s.commit()
        events = s.scalars(select(WebhookEvent).order_by(WebhookEvent.seq)).all()
        assert {str(e.id).replace("-", "") for e in events} == ids  # event id = status event id
        assert s.scalars(select(WebhookBatch)).all() == []
        assert len(s.scalars(select(WebhookDelivery)).all()) == 30


def test_no_endpoint_no_outbox_and_a_rollback_takes_it_back(
    org, as_tenant, make_certification, make_employees, make_assignment
):
    _soon_expiring(org, make_certification, make_employees, make_assignment, 5)
    changed, batches, *_ = _recompute(as_tenant, org, commit=False)
    assert (changed, batches) == (5, 0)  # events off: nothing written
    with as_tenant(org.id) as s:
        build_webhook(s, events=["*"], event_filter="*")
        s.commit()
    changed, batches, *_ = _recompute(as_tenant, org, commit=False)
    assert changed == 5
    assert batches > 0
    with as_tenant(org.id) as s:
        assert s.scalars(select(WebhookBatch)).all() == []  # rolled back with the change
