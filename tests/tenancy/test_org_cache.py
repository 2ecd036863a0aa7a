"""Per-request auth costs: one token decode, organizations kept per process and dropped on change
(`tenancy.org_cache`)."""

from __future__ import annotations

import jwt.api_jws
from sqlalchemy import update

from tenancy import org_cache
from tenancy.models import Organization

VIEW = "/views/employees?limit=5"  # needs the HSE module


def test_token_is_verified_once_per_request(api, monkeypatch):
    """The rate limiter and auth share one verified decode per request (it was seven parses
    and two signature checks), and a process checks a token's signature and parses its header
    once: the second request finds both kept (tenancy.auth._verified, _token_header) and
    parses nothing."""
    parses: list[bytes] = []
    checks: list[bytes] = []
    load, verify = jwt.api_jws.PyJWS._load, jwt.api_jws.PyJWS._verify_signature

    def counting_load(self, token):
        parses.append(token)
        return load(self, token)

    def counting_verify(self, signing_input, *args, **kwargs):
        checks.append(signing_input)
        return verify(self, signing_input, *args, **kwargs)

    monkeypatch.setattr(jwt.api_jws.PyJWS, "_load", counting_load)
    monkeypatch.setattr(jwt.api_jws.PyJWS, "_verify_signature", counting_verify)
    for path in ("/org", VIEW):
        parses.clear()
        assert api.get(path).status_code == 200
        assert len(parses) <= 2, path
    assert parses == []  # the second request: signature and header kept
    assert len(checks) <= 1  # none if an earlier test verified this token already


def test_second_request_reads_the_kept_organization(api, org):
    assert api.get(VIEW).status_code == 200
    kept = org_cache.cached(org.id)
    assert kept is not None
    assert kept.has_module("hse")


def test_a_change_in_another_session_is_seen_at_once(api, org, as_tenant):
    assert api.get(VIEW).status_code == 200  # the organization is kept now
    with as_tenant(org.id) as s:
        row = s.get(Organization, org.id)
        row.modules = []
        s.commit()
    resp = api.get(VIEW)
    assert resp.status_code == 403, resp.get_data(as_text=True)
    assert resp.get_json()["code"] == "module_disabled"


def test_a_module_toggled_through_the_api_is_seen_at_once(api):
    assert api.get(VIEW).status_code == 200
    assert api.put("/org/modules/hse", json={"enabled": False}).status_code == 200
    assert api.get(VIEW).status_code == 403
    assert api.put("/org/modules/hse", json={"enabled": True}).status_code == 200
    assert api.get(VIEW).status_code == 200


def test_an_update_statement_drops_every_entry(api, org, as_tenant):
    assert api.get(VIEW).status_code == 200
    with as_tenant(org.id) as s:
        s.execute(update(Organization).where(Organization.id == org.id).values(modules=[]))
        s.commit()
    assert org_cache.cached(org.id) is None
    assert api.get(VIEW).status_code == 403


def test_a_rolled_back_change_keeps_nothing_stale(api, org, as_tenant):
    assert api.get(VIEW).status_code == 200
    with as_tenant(org.id) as s:
        row = s.get(Organization, org.id)
        row.modules = []
        s.flush()  # dropped at the flush
        assert org_cache.cached(org.id) is None
        s.rollback()
    assert api.get(VIEW).status_code == 200  # read again: the module is still on


def test_entries_expire(api, org, monkeypatch):
    monkeypatch.setattr(org_cache, "TTL_S", -1.0)  # kept already stale
    assert api.get(VIEW).status_code == 200
    assert org_cache.cached(org.id) is None
