"""Webhooks never reach private networks in production (SSRF), only public addresses."""

from __future__ import annotations

import pytest

from certifications.automation.transports import DeliveryError, check_webhook_target
from infra.settings import load_settings

PRIVATE = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.9/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://[::1]/hook",
    "http://[fd00::1]/hook",
    "http://0.0.0.0/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    # IPv6 forms that carry an IPv4 address: the connection goes to the embedded address.
    "http://[::127.0.0.1]/hook",  # IPv4-compatible (deprecated ::/96)
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "http://[::ffff:169.254.169.254]/latest/meta-data",
    "http://[::ffff:0:a00:1]/hook",  # IPv4-translated (SIIT, ::ffff:0:0:0/96) of 10.0.0.1
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 well-known prefix of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a00:1]/hook",  # local-use NAT64 prefix (RFC 8215): never public
    "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
    "http://[::a00:1]/hook",  # IPv4-compatible 10.0.0.1
]


@pytest.mark.parametrize("url", PRIVATE)
def test_private_targets_refused_when_not_allowed(url):
    with pytest.raises(DeliveryError, match="non-public address"):
        check_webhook_target(url, allow_private=False)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_targets_allowed_when_configured(url):
    check_webhook_target(url, allow_private=True)  # local development and tests


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "http://8.8.8.8:8443/x",
        "https://[2606:4700::1]/h",
        # NAT64 / mapped forms of a public address stay usable (IPv6-only networks).
        "https://[64:ff9b::808:808]/h",
        "https://[::ffff:8.8.8.8]/h",
    ],
)
def test_public_addresses_pass(url):
    check_webhook_target(url, allow_private=False)  # literal IPs: no DNS query, no traffic


def test_production_refuses_private_by_default():
    prod = {
        "CERTS_ENV": "production",
        "DATABASE_URL": "postgresql://a@db/c",
        "REDIS_URL": "redis://r:6379/0",
        "JWT_SECRET_KEY": "k" * 40,
        "DB_PLATFORM_KEYS": "p" * 40,
        "WEBHOOK_SECRET_KEYS": "w" * 43 + "=",
    }
    assert load_settings(prod).webhook_allow_private is False
    opt_in = {**prod, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
    assert load_settings(opt_in).webhook_allow_private is True
    assert load_settings({}).webhook_allow_private is True  # development
