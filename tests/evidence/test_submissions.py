"""Self-service submissions and the review queue through the HTTP API, and the notices they
send (the rejection reaches the worker through a real SMTP server on loopback)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from certifications.automation.models import Notification
from tenancy.auth import TENANT_SCOPES
from tests.evidence.conftest import files, pdf
from workers.delivery import deliver


def _submit(client: Any, assignment_id: Any, *parts: tuple[bytes, str], **fields: Any) -> Any:
    return client.post(
        f"/me/assignments/{assignment_id}/submissions",
        data=files(*parts, **fields),
        content_type="multipart/form-data",
    )


def _notes(as_tenant: Any, org_id: uuid.UUID, trigger: str) -> list[Notification]:
    with as_tenant(org_id) as s:
        stmt = select(Notification).where(Notification.trigger == trigger)
        return list(s.scalars(stmt.order_by(Notification.recipient)))


def test_a_worker_sees_only_their_own(scene, api_for) -> None:
    me = scene.me.get("/me")
    assert me.status_code == 200
    assert me.get_json()["id"] == str(scene.worker.id)
    mine = scene.me.get("/me/assignments").get_json()["items"]
    assert [(a["id"], a["status"]) for a in mine] == [(str(scene.assignment.id), "missing")]

    # Another worker's assignment: not found through /me, refused everywhere else — also when
    # the token carries every other scope besides `self`.
    other = _submit(scene.me, scene.others_assignment.id, issued_on="2026-11-01")
    assert other.status_code == 404
    loaded = api_for(scene.org, scopes=[*TENANT_SCOPES, "self"], sub="idp|w")
    for path in (
        f"/assignments/{scene.others_assignment.id}",
        f"/assignments/{scene.assignment.id}",
        "/employees",
        f"/employees/{scene.other.id}",
        "/roles",
        "/submissions",
    ):
        assert scene.me.get(path).status_code == 403, path
        resp = loaded.get(path)
        assert resp.status_code == 403, path
        assert resp.get_json()["errors"] == {"scope": ["self"]}
    # A token whose subject no employee carries gets nothing.
    stranger = api_for(scene.org, scopes=["self"], sub="idp|nobody")
    assert stranger.get("/me").status_code == 403
    assert stranger.get("/me/assignments").status_code == 403


def test_approve_turns_missing_into_valid_and_attaches_the_document(
    scene, as_tenant, api_for
) -> None:
    data = pdf("approve")
    sent = _submit(scene.me, scene.assignment.id, (data, "card.pdf"), issued_on="2026-11-01")
    assert sent.status_code == 201, sent.get_json()
    submission = sent.get_json()
    assert submission["status"] == "pending"
    assert submission["submitter_employee_id"] == str(scene.worker.id)

    # Pending never changes the status; the assignment shows what waits.
    waiting = scene.admin.get(f"/assignments/{scene.assignment.id}").get_json()
    assert waiting["status"] == "missing"
    assert waiting["pending_submission"] == submission["id"]
    again = _submit(scene.me, scene.assignment.id, issued_on="2026-11-02")
    assert again.status_code == 409

    # The reviewers heard of it.
    pending = _notes(as_tenant, scene.org.id, "submission_pending")
    assert [n.recipient for n in pending] == ["review@example.test"]

    # Only certifications:review approves.
    no_review = api_for(scene.org, scopes=[s for s in TENANT_SCOPES if "review" not in s])
    assert no_review.post(f"/submissions/{submission['id']}/approve").status_code == 403
    approved = scene.reviewer.post(f"/submissions/{submission['id']}/approve")
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["status"] == "approved"

    after = scene.admin.get(f"/assignments/{scene.assignment.id}").get_json()
    assert after["status"] == "valid"
    assert after["issued_on"] == "2026-11-01"
    assert after["pending_submission"] is None
    documents = scene.admin.get(f"/assignments/{scene.assignment.id}/documents").get_json()
    assert [(d["cycle"], d["submission_id"]) for d in documents["items"]] == [
        (after["cycle"], submission["id"])
    ]
    assert scene.reviewer.post(f"/submissions/{submission['id']}/approve").status_code == 409
    approved_notes = _notes(as_tenant, scene.org.id, "submission_approved")
    assert [n.recipient for n in approved_notes] == ["wanda@example.test"]
    # The worker sees the result in their own list.
    mine = scene.me.get("/me/assignments").get_json()["items"]
    assert mine[0]["status"] == "valid"


def test_reject_keeps_the_status_and_one_email_reaches_the_worker(
    scene, as_tenant, smtp, settings, jobs
) -> None:
    sent = _submit(scene.me, scene.assignment.id, (pdf("reject"), "blurry.jpg.pdf"))
    submission_id = sent.get_json()["id"]
    assert scene.reviewer.post(f"/submissions/{submission_id}/reject", json={}).status_code == 422
    rejected = scene.reviewer.post(
        f"/submissions/{submission_id}/reject", json={"reason": "The scan is unreadable."}
    )
    assert rejected.status_code == 200, rejected.get_json()
    assert rejected.get_json()["reason"] == "The scan is unreadable."

    after = scene.admin.get(f"/assignments/{scene.assignment.id}").get_json()
    assert after["status"] == "missing"
    assert after["cycle"] == 1
    assert after["pending_submission"] is None
    assert (
        scene.reviewer.post(
            f"/submissions/{submission_id}/reject", json={"reason": "x"}
        ).status_code
        == 409
    )

    # Delivered by the worker through the outbox, like every notification; once.
    jobs.drain()
    notes = _notes(as_tenant, scene.org.id, "submission_rejected")
    assert [(n.recipient, n.status) for n in notes] == [("wanda@example.test", "sent")]
    assert deliver(scene.org.id, notes[0].id, settings=settings).state != "sent"
    mails = smtp.to("wanda@example.test")
    assert len(mails) == 1
    assert "rejected" in mails[0].message["Subject"]
    assert "The scan is unreadable." in mails[0].part("plain")
    assert "Forklift" in mails[0].part("plain")

    # A new submission may follow the rejected one.
    assert _submit(scene.me, scene.assignment.id, issued_on="2026-11-03").status_code == 201


def test_the_queue_is_oldest_first_and_filters(scene, make_certification, make_assignment) -> None:
    first = _submit(scene.me, scene.assignment.id, issued_on="2026-11-01").get_json()
    other_me = scene.me  # the same worker, a second certification
    cert = make_certification(scene.org, name="Crane", validity_months=24)
    second_assignment = make_assignment(cert, scene.worker, issued_on=None, status="missing")
    second = _submit(other_me, second_assignment.id, issued_on="2026-11-02").get_json()

    queue = scene.reviewer.get("/submissions", query_string={"status": "pending"}).get_json()
    assert [s["id"] for s in queue["items"]] == [first["id"], second["id"]]
    only = scene.reviewer.get(
        "/submissions", query_string={"status": "pending", "certification_id": str(cert.id)}
    ).get_json()
    assert [s["id"] for s in only["items"]] == [second["id"]]
    assert (
        scene.reviewer.get("/submissions", query_string={"status": "approved"}).get_json()["items"]
        == []
    )
    assert scene.reviewer.get("/submissions", query_string={"status": "nope"}).status_code == 422


def test_admin_submissions_wait_only_when_review_is_required(
    scene, make_certification, make_assignment, make_employee
) -> None:
    plain = make_certification(scene.org, name="Plain", validity_months=12)
    reviewed = make_certification(scene.org, name="Reviewed", review_required=True)
    form = {"fields": [{"name": "card", "label": "Card", "type": "text", "required": True}]}
    with_form = make_certification(scene.org, name="Form", forms_required=True, form=form)

    def submit(cert: Any, **fields: Any) -> Any:
        person = make_employee(scene.org, name="Pat")
        assignment = make_assignment(cert, person, issued_on=None, status="missing")
        resp = scene.admin.post(
            f"/assignments/{assignment.id}/submissions",
            data=files((pdf(cert.name), "c.pdf"), **fields),
            content_type="multipart/form-data",
        )
        return assignment, resp

    assignment, resp = submit(plain, issued_on="2026-10-01")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "approved"
    assert scene.admin.get(f"/assignments/{assignment.id}").get_json()["status"] == "valid"

    assignment, resp = submit(reviewed, issued_on="2026-10-01")
    assert resp.get_json()["status"] == "pending"
    assert scene.admin.get(f"/assignments/{assignment.id}").get_json()["status"] == "missing"

    # forms_required implies review, and the form's answers are required and checked.
    _a, missing_answers = submit(with_form, issued_on="2026-10-01")
    assert missing_answers.status_code == 422
    assert "answers" in missing_answers.get_json()["errors"]
    assignment, resp = submit(with_form, issued_on="2026-10-01", answers='{"card": "C-1"}')
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "pending"
    approved = scene.reviewer.post(f"/submissions/{resp.get_json()['id']}/approve")
    assert approved.status_code == 200
    after = scene.admin.get(f"/assignments/{assignment.id}").get_json()
    assert after["status"] == "valid"
    assert after["form_accepted_at"] is not None


def test_reviewers_are_set_on_the_org_and_default_to_the_admins(scene, as_tenant) -> None:
    resp = scene.admin.patch("/org", json={"reviewer_emails": ["not an address"]})
    assert resp.status_code == 422
    assert "reviewer_emails" in resp.get_json()["errors"]["json"]
    cleared = scene.admin.patch("/org", json={"reviewer_emails": []})
    assert cleared.status_code == 200
    assert cleared.get_json()["reviewer_emails"] == []
    sent = _submit(scene.me, scene.assignment.id, issued_on="2026-11-01")
    assert sent.status_code == 201
    pending = _notes(as_tenant, scene.org.id, "submission_pending")
    assert [(n.recipient, n.recipient_source) for n in pending] == [("boss@example.test", "admins")]
