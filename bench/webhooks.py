"""`python -m bench webhooks --size N`: events per second delivered to a loopback receiver.

N `assignment.created` events are produced by set-based INSERTs of N assignments into an org
with one endpoint subscribed to everything (the trigger writes one outbox batch per statement);
`dispatch_seconds`: turning the batches into N events and N deliveries (the first part of a
round). Timed: `workers.webhooks.deliver_round` until every delivery is `delivered` (claim a bounded
batch, sign, POST each event over a keep-alive connection, record the batch), against a
receiver in another process (HTTP/1.1, answers 204). Floor: the same number of signed POSTs of
the same size over one connection, without the database. Median of `REPEATS` runs.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, insert, select, text, update

from bench._support import alternate
from certifications.assignments.models import Assignment
from certifications.automation.transports import sign
from certifications.catalog.models import Certification
from certifications.webhooks.dispatch import dispatch
from certifications.webhooks.models import WebhookDelivery, WebhookEndpoint
from certifications.webhooks.transport import Connection
from infra import context, migrate
from infra import database as db
from infra.settings import load_settings
from runtime import bootstrap
from tenancy.organizations import create_organization
from tenancy.scoping import tenant_statement
from tenancy.sealed import SealedSecret
from workers.webhooks import deliver_round

DEFAULT_SIZE = 5_000
REPEATS = 3
BATCH = 10_000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serve(port: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port.value = server.server_address[1]
    server.serve_forever()


def _receiver() -> tuple[multiprocessing.Process, str]:
    port = multiprocessing.Value("i", 0)
    proc = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    proc.start()
    while not port.value:
        time.sleep(0.01)
    return proc, f"http://127.0.0.1:{port.value}/hook"


def _setup(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=f"bench webhooks {uuid.uuid4().hex[:6]}")
        s.commit()
    with context.tenant(org.id), db.new_session() as s:
        cert = Certification(name="Forklift", type="employee", validity_months=12, warning_days=30)
        s.add(cert)
        s.add(
            WebhookEndpoint(
                url=url, events=["*"], event_filter="*", secret=SealedSecret.seal("whsec_bench")
            )
        )
        s.commit()
        return org.id, cert.id


PG_PRODUCE = """
INSERT INTO assignments (org_id, id, certification_id, subject_type, subject_id, source,
    required, cycle, issued_on, effective_on, expires_on, expires_explicit, status,
    status_changed_at, created_at, updated_at)
SELECT :org, gen_random_uuid(), :cert, 'employee', gen_random_uuid(), 'role', true, 1,
    :issued, :issued, :expires, false, 'valid', now(), now(), now()
FROM generate_series(1, :n)
"""


def _produce(org_id: uuid.UUID, cert_id: uuid.UUID, size: int) -> None:
    """N assignments, set-based as the role fan-out writes them: one statement on PostgreSQL
    (one outbox batch), executemany elsewhere."""
    issued = date(2026, 6, 1)
    expires = issued + timedelta(days=365)
    with context.tenant(org_id), db.new_session() as s:
        if s.get_bind().dialect.name == "postgresql":
            params = {"org": org_id, "cert": cert_id, "n": size}
            s.execute(
                tenant_statement(text(PG_PRODUCE)),  # writes :org's rows only
                params | {"issued": issued, "expires": expires},
            )
            s.commit()
            return
        for start in range(0, size, BATCH):
            rows = [
                {
                    "org_id": org_id,
                    "id": uuid.uuid4(),
                    "certification_id": cert_id,
                    "subject_type": "employee",
                    "subject_id": uuid.uuid4(),
                    "issued_on": issued,
                    "effective_on": issued,
                    "expires_on": expires,
                    "status": "valid",
                }
                for _ in range(start, min(size, start + BATCH))
            ]
            s.execute(insert(Assignment), rows)
        s.commit()


def _pending(org_id: uuid.UUID) -> int:
    with context.tenant(org_id), db.new_session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.status == "pending")
            )
            or 0
        )


def run_delivery(org_id: uuid.UUID, settings: Any) -> float:
    with context.tenant(org_id), db.new_session() as s:  # all pending again, untimed
        s.execute(update(WebhookDelivery).values(status="pending", attempts=0, delivered_at=None))
        s.commit()
    started = time.perf_counter()
    while _pending(org_id):
        deliver_round(org_id, settings, budget_s=3600)
    return time.perf_counter() - started


def run_floor(url: str, size: int) -> float:
    body = json.dumps({"id": str(uuid.uuid4()), "data": {"x": "y" * 300}}).encode()
    conn = Connection(url)
    started = time.perf_counter()
    for _ in range(size):
        headers = {"Content-Type": "application/json", "X-Signature": sign("whsec_bench", body)}
        assert 200 <= conn.post(body, headers) < 300
    conn.close()
    return time.perf_counter() - started


def main(size: int) -> None:
    settings = load_settings()
    migrate.upgrade(settings)
    bootstrap(settings)
    proc, url = _receiver()
    try:
        org_id, cert_id = _setup(url)
        started = time.perf_counter()
        _produce(org_id, cert_id, size)
        produced = time.perf_counter() - started
        started = time.perf_counter()
        while True:
            with context.tenant(org_id), db.new_session() as s:
                done = dispatch(s)
                s.commit()
            if not done:
                break
        dispatched = time.perf_counter() - started
        assert _pending(org_id) == size, "one delivery per assignment"
        medians = alternate(
            "webhooks",
            {
                "delivery": lambda: run_delivery(org_id, settings),
                "floor": lambda: run_floor(url, size),
            },
            repeats=REPEATS,
        )
        seconds, floor = medians["delivery"], medians["floor"]
    finally:
        proc.terminate()
    result = {
        "scenario": "webhooks",
        "size": size,
        "seconds": round(seconds, 3),
        "floor_seconds": round(floor, 3),
        "events_per_second": round(size / seconds, 1),
        "floor_per_second": round(size / floor, 1),
        "ratio": round(seconds / floor, 2) if floor else None,
        "produce_seconds": round(produced, 3),
        "dispatch_seconds": round(dispatched, 3),
    }
    print(
        f"webhooks: {size} events delivered in {seconds:.2f}s ({result['events_per_second']}/s) "
        f"vs raw signed POSTs {floor:.2f}s ({result['floor_per_second']}/s, {result['ratio']}x); "
        f"produced by the INSERTs' trigger in {produced:.2f}s, dispatched into events and "
        f"deliveries in {dispatched:.2f}s; medians of {REPEATS}"
    )
    print(json.dumps(result))
