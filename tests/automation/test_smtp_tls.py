"""SMTP with STARTTLS and credentials, against aiosmtpd requiring both."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import ssl
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from certifications.automation import delivery, transports
from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from infra import context
from tests.automation.conftest import TODAY
from tests.support.receivers import SmtpSink
from tests.support.suite import free_port as _free_port
from workers.delivery import deliver


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_smtp(tmp_path, monkeypatch):
    cert_file, key_file = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    logins: list[str] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"hunter2-long"
        logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    sink = SmtpSink()
    port = _free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    # aiosmtpd answers a wrong password slowly; don't wait the production timeout for it.
    monkeypatch.setattr(transports, "SMTP_TIMEOUT", 2)
    # The client trusts exactly this test certificate (production: the system's CAs).
    monkeypatch.setattr(
        transports, "tls_context", lambda: ssl.create_default_context(cafile=str(cert_file))
    )
    yield sink, port, logins
    controller.stop()


def test_starttls_and_login_then_delivered(
    make_org, as_tenant, settings, tls_smtp, make_employee, make_certification, make_assignment
):
    sink, port, logins = tls_smtp
    org = make_org()
    rule = {"trigger": "before_expiry", "days": 30, "recipients": ["holder"], "channels": ["email"]}
    cert = make_certification(org, notification_rules=[rule])
    make_assignment(
        cert, make_employee(org, email="ada@example.test"), expires_on=TODAY + timedelta(days=3)
    )
    with as_tenant(org.id) as s:
        evaluate_rules(s, org.id, TODAY)
        s.commit()
        (nid,) = s.scalars(select(Notification.id)).all()
    base = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=port)
    policy = delivery.RetryPolicy(max_attempts=5, base_ms=1, max_ms=1)
    with context.tenant(org.id):
        plain = deliver(org.id, nid, settings=base, policy=policy)
        assert plain.state == "retry"  # the server requires STARTTLS
        wrong = dataclasses.replace(
            base, smtp_starttls=True, smtp_username="certs", smtp_password="nope"
        )
        assert deliver(org.id, nid, settings=wrong, policy=policy).state == "retry"
        good = dataclasses.replace(wrong, smtp_password="hunter2-long")
        assert deliver(org.id, nid, settings=good, policy=policy).state == "sent"
    assert logins == ["certs", "certs"]
    assert [m.rcpt_tos for m in sink.messages] == [["ada@example.test"]]
