"""Webhook secrets are encrypted at rest (Fernet, keys from WEBHOOK_SECRET_KEYS)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Uuid, bindparam, text

from tenancy.sealed import SecretBox, SecretUnavailable

RAW = text("SELECT webhook_secret FROM organizations WHERE id = :i").bindparams(
    bindparam("i", type_=Uuid())
)


def _stored(as_tenant, org_id):
    """The column as the database holds it (no ORM type in between)."""
    with as_tenant(org_id) as s:
        return s.scalar(RAW, {"i": org_id})


def test_webhook_secret_is_encrypted_at_rest(api, org, as_tenant):
    """The column held the HMAC key in clear: a database dump or a read bug gave it away."""
    secret = "whsec-" + "q" * 30
    resp = api.patch("/org", json={"webhook_secret": secret})
    assert resp.status_code == 200, resp.get_json()
    stored = _stored(as_tenant, org.id)
    assert stored is not None
    assert secret not in stored
    assert stored.startswith("fernet:")


def test_the_secret_signs_webhooks_and_is_never_returned(api, org, as_tenant):
    from tenancy.models import Organization

    secret = "whsec-" + "r" * 30
    assert api.patch("/org", json={"webhook_secret": secret}).status_code == 200
    body = api.get("/org").get_json()
    assert body["webhook_secret_set"] is True
    assert "webhook_secret" not in body
    with as_tenant(org.id) as s:
        sealed = s.get(Organization, org.id).webhook_secret
    assert sealed is not None
    assert sealed.is_sealed
    assert sealed.reveal() == secret
    assert secret not in repr(sealed)
    assert api.patch("/org", json={"webhook_secret": None}).status_code == 200
    assert _stored(as_tenant, org.id) is None


def test_a_plain_string_is_never_stored(org, as_tenant):
    """A write that forgets to seal fails instead of putting the secret back in clear."""
    from sqlalchemy.exc import StatementError

    from tenancy.models import Organization

    with as_tenant(org.id) as s:
        s.get(Organization, org.id).webhook_secret = "forgot-to-seal-" + "x" * 20
        with pytest.raises(StatementError, match="SealedSecret"):
            s.flush()
    assert _stored(as_tenant, org.id) is None


OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_multifernet_rotation_first_key_seals_every_key_opens():
    stored = SecretBox([OLD]).seal("rotate-me-" + "z" * 20)
    both = SecretBox([NEW, OLD])
    assert both.open(stored) == "rotate-me-" + "z" * 20
    fresh = both.reseal(stored)
    assert SecretBox([NEW]).open(fresh) == "rotate-me-" + "z" * 20
    with pytest.raises(SecretUnavailable, match="WEBHOOK_SECRET_KEYS"):
        SecretBox([OLD]).open(fresh)
    assert both.open("legacy-clear-secret") == "legacy-clear-secret"  # stored before sealing


def _put_raw(as_tenant, org_id, value):
    with as_tenant(org_id) as s:
        s.execute(
            text("UPDATE organizations SET webhook_secret = :v WHERE id = :i").bindparams(
                bindparam("i", type_=Uuid())
            ),
            {"v": value, "i": org_id},
        )
        s.commit()


def test_reseal_encrypts_legacy_clear_secrets_and_moves_old_keys_forward(make_org, as_tenant):
    from infra import context
    from infra import database as db
    from tenancy.organizations import reseal_webhook_secrets

    legacy, rotated, lost = make_org(), make_org(), make_org()
    _put_raw(as_tenant, legacy.id, "legacy-clear-secret-0123456789")
    _put_raw(as_tenant, rotated.id, SecretBox([OLD]).seal("older-key-secret-0123456789"))
    _put_raw(as_tenant, lost.id, SecretBox([Fernet.generate_key().decode()]).seal("gone-0123456"))
    box = SecretBox([NEW, OLD])
    try:
        with context.platform(), db.new_session() as s:
            report = reseal_webhook_secrets(s, box)
            s.commit()
        # (Other tests' orgs are sealed with the suite's key, which this box does not hold.)
        assert str(lost.id) in report["unreadable"]
        assert {str(legacy.id), str(rotated.id)}.isdisjoint(report["unreadable"])
        only_new = SecretBox([NEW])
        assert only_new.open(_stored(as_tenant, legacy.id)) == "legacy-clear-secret-0123456789"
        assert only_new.open(_stored(as_tenant, rotated.id)) == "older-key-secret-0123456789"
    finally:  # keys this suite's processes do not have: leave nothing they cannot open
        for org in (legacy, rotated, lost):
            _put_raw(as_tenant, org.id, None)


def test_cli_secrets_rotate_seals_clear_secrets(make_org, as_tenant):
    import json

    from click.testing import CliRunner

    from cli.main import main
    from tenancy.sealed import box
    from tests.support.suite import CLI_ENV

    org = make_org()
    _put_raw(as_tenant, org.id, "legacy-clear-secret-abcdefghij")
    result = CliRunner(env=CLI_ENV).invoke(main, ["secrets", "rotate"])
    assert result.exit_code == 0, result.output
    # Only the report's line: while CliRunner holds stdout, a worker thread left running by an
    # earlier test may log a line of its own into the captured output.
    (report,) = [json.loads(line) for line in result.output.splitlines() if '"resealed"' in line]
    assert report["unreadable"] == []
    assert report["resealed"] >= 1
    stored = _stored(as_tenant, org.id)
    assert stored.startswith("fernet:")
    assert box().open(stored) == "legacy-clear-secret-abcdefghij"
