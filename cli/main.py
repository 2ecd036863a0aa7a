"""The `certs` command line (SPEC §8): settings from the environment, once, then `bootstrap`.

Each command is a unit of work of its own (it opens, commits and closes its sessions).
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import click

from infra import context
from infra import database as db
from infra.logging import configure_logging
from infra.settings import Settings, load_settings
from runtime import Runtime, bootstrap
from tenancy.auth import PLATFORM_SCOPE, SCOPES, TENANT_SCOPES, issue_token

DEV_ORG_NAME = "Local development"


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Certifications service."""
    settings = load_settings()
    ctx.obj = settings
    configure_logging(settings.log_level, settings.log_format)


def _settings() -> Settings:
    settings = click.get_current_context().find_object(Settings)
    assert settings is not None, "main() loads the settings"
    return settings


def _day(settings: Settings) -> int:
    """The printed development/demo tokens' lifetime: a day, or less if the maximum is lower."""
    return min(86400, settings.jwt_max_lifetime_seconds)


def _bootstrap(*, actors: bool = False) -> Runtime:
    """Wire this process; with `actors`, declare them too (to run jobs in this process)."""
    settings = _settings()
    runtime = bootstrap(settings)
    if actors:
        from workers.actors import register_actors

        register_actors(runtime.broker, settings)
    return runtime


@main.group("db")
def db_group() -> None:
    """Database migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations (as the owner role: MIGRATION_DATABASE_URL, else DATABASE_URL)."""
    from infra import migrate

    migrate.upgrade(_settings(), revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (`base` for an empty database)."""
    from infra import migrate

    migrate.downgrade(_settings(), revision)
    click.echo(f"database at {revision}")


@main.group("org")
def org_group() -> None:
    """Organizations."""


@org_group.command("create")
@click.option("--name", required=True)
@click.option("--timezone", default="UTC")
@click.option("--modules", default="", help="Space or comma separated, e.g. 'hse'.")
def org_create(name: str, timezone: str, modules: str) -> None:
    """Create an organization and print it as JSON."""
    from tenancy.organizations import create_organization

    _bootstrap()
    mods = [m for m in modules.replace(",", " ").split() if m]
    with context.platform(), db.new_session() as session:
        org = create_organization(session, name=name, timezone=timezone, modules=mods)
        session.commit()
        click.echo(
            json.dumps(
                {
                    "id": str(org.id),
                    "name": org.name,
                    "timezone": org.timezone,
                    "modules": org.modules,
                }
            )
        )


@main.group("secrets")
def secrets_group() -> None:
    """Secrets stored encrypted (the organizations' webhook secrets)."""


@secrets_group.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every webhook secret under the first WEBHOOK_SECRET_KEYS key.

    Also encrypts secrets stored in clear before encryption existed. Run it after putting a
    new key first, and before removing an old one. Exits 1 if a secret no key opens remains.
    """
    from tenancy.organizations import reseal_webhook_secrets

    _bootstrap()
    with context.platform(), db.new_session() as session:
        report = reseal_webhook_secrets(session)
        session.commit()
    click.echo(json.dumps(report))
    if report["unreadable"]:
        sys.exit(1)


@main.group("token")
def token_group() -> None:
    """Access tokens."""


@token_group.command("issue")
@click.option("--org", "org_id", default=None, help="Organization id (omit for platform:admin).")
@click.option("--sub", required=True, help="User id the token speaks for.")
@click.option("--scopes", default=" ".join(TENANT_SCOPES), show_default=True)
@click.option("--ttl", default=3600, show_default=True, type=int)
def token_issue(org_id: str | None, sub: str, scopes: str, ttl: int) -> None:
    """Print a signed JWT."""
    scope_list = scopes.split()
    unknown = [s for s in scope_list if s not in SCOPES]
    if unknown:
        raise click.BadParameter(f"unknown scopes: {' '.join(unknown)}", param_hint="--scopes")
    if org_id is None and PLATFORM_SCOPE not in scope_list:
        raise click.BadParameter("required unless --scopes has platform:admin", param_hint="--org")
    if org_id is not None and PLATFORM_SCOPE in scope_list:
        raise click.BadParameter(
            "platform:admin is valid only on a token without --org (an operator's token)",
            param_hint="--scopes",
        )
    if org_id is not None:
        uuid.UUID(org_id)
    settings = _settings()
    if ttl > settings.jwt_max_lifetime_seconds:
        raise click.BadParameter(
            f"at most {settings.jwt_max_lifetime_seconds} seconds (JWT_MAX_LIFETIME_SECONDS)",
            param_hint="--ttl",
        )
    click.echo(issue_token(settings, sub=sub, org_id=org_id, scopes=scope_list, ttl=ttl))


@main.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Create the demo organization once and print its token.")
def run(host: str, port: int, demo: bool) -> None:
    """Migrate, then serve the API with an in-process worker and scheduler."""
    import dramatiq

    from api import create_app
    from infra import migrate
    from workers.scheduler import build_scheduler

    settings = _settings()
    migrate.upgrade(settings)
    runtime = _bootstrap(actors=True)
    app = create_app(settings, runtime)
    if demo:
        org = _demo_org(if_missing=True)
        _print_org_token(settings, org, sub="demo-admin", label="Demo organization")
    else:
        _print_dev_token(settings)
    click.echo(f'curl -H "Authorization: Bearer $TOKEN" http://{host}:{port}/api/v1/org\n')
    worker = dramatiq.Worker(runtime.broker, worker_threads=2)
    worker.start()
    scheduler = build_scheduler(background=True)
    scheduler.start()
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        scheduler.shutdown(wait=False)
        worker.stop()


def _print_dev_token(settings: Settings) -> None:
    """In development, make sure an org exists and print a token for it."""
    if settings.env == "production":
        return
    from sqlalchemy import select

    from tenancy.models import Organization
    from tenancy.organizations import create_organization

    with context.platform(), db.new_session() as session:
        org = session.scalars(select(Organization).order_by(Organization.created_at)).first()
        if org is None:
            org = create_organization(session, name=DEV_ORG_NAME, modules=["hse"])
            session.commit()
    _print_org_token(settings, org, sub="dev-admin", label="Organization")


@main.command("worker")
@click.option("--processes", default=None, type=int, help="Default: WORKER_PROCESSES (2).")
@click.option("--threads", default=None, type=int, help="Default: WORKER_THREADS (4).")
def worker(processes: int | None, threads: int | None) -> None:
    """Run the Dramatiq worker (production: REDIS_URL must be set)."""
    from dramatiq.cli import main as dramatiq_main

    from workers.process import prepare_worker

    settings = _settings()
    processes = processes or settings.worker_processes
    threads = threads or settings.worker_threads
    extra = prepare_worker(settings)  # logs, metrics on WORKER_METRICS_PORT
    sys.argv = [
        "dramatiq",
        "workers.entry:setup",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        *extra,
    ]
    sys.exit(dramatiq_main())


@main.command("scheduler")
def scheduler() -> None:
    """Run the periodic scheduler (one active instance)."""
    from workers.process import prepare_scheduler

    prepare_scheduler(_settings())  # logs
    _bootstrap()  # publishes through the outbox; the workers run the jobs
    from workers.scheduler import build_scheduler

    build_scheduler(background=False).start()


@main.command("tick")
@click.option("--org", "org_id", default=None, help="Only this organization.")
@click.option(
    "--timeout", default=300.0, show_default=True, type=float, help="Seconds to wait for jobs."
)
def tick(org_id: str | None, timeout: float) -> None:
    """Run the periodic work once, now, wait for the jobs it queued, print a JSON report."""
    oid = None
    if org_id is not None:
        try:
            oid = uuid.UUID(org_id)
        except ValueError:
            raise click.BadParameter("not a UUID", param_hint="--org") from None
    _bootstrap(actors=True)
    from jobs.relay import sweep
    from workers.tick import tick_now, wait_for_queued

    started = db.utcnow()
    swept = sweep(started)
    ticked = tick_now(started, oid)
    report: dict[str, Any] = {"outbox_sweep": {"sent": swept}, "tick": ticked}
    org_ids = [uuid.UUID(key) for key in ticked["ticks"]]
    report["queued_work"] = wait_for_queued(started, timeout, org_ids)
    click.echo(json.dumps(report, default=str))


@main.group("snapshots")
def snapshots_group() -> None:
    """Daily compliance snapshots (the trend's points)."""


@snapshots_group.command("backfill")
@click.option("--since", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--org", "org_id", default=None, help="Only this organization.")
def snapshots_backfill(since: Any, org_id: str | None) -> None:
    """Write every day's snapshot from --since through today, from history; prints JSON
    {org id: days}. Idempotent: a re-run writes the same figures."""
    oid = None
    if org_id is not None:
        try:
            oid = uuid.UUID(org_id)
        except ValueError:
            raise click.BadParameter("not a UUID", param_hint="--org") from None
    _bootstrap()
    from workers.tick import backfill_snapshots

    click.echo(json.dumps(backfill_snapshots(since.date(), oid)))


@main.group("jobs")
def jobs_group() -> None:
    """Background jobs whose retries ran out (docs/operations.md)."""


_JOB_STATUSES = click.Choice(["dead", "failed"])


@jobs_group.command("list")
@click.option("--status", "statuses", multiple=True, type=_JOB_STATUSES, default=("dead",))
@click.option("--limit", default=100, show_default=True, type=int)
def jobs_list(statuses: tuple[str, ...], limit: int) -> None:
    """One JSON line per outbox row given up (`dead`) or waiting for its next retry (`failed`)."""
    _bootstrap()
    from jobs.relay import stuck

    for row in stuck(statuses, limit):
        click.echo(json.dumps(row, default=str))


@jobs_group.command("requeue")
@click.option("--status", "statuses", multiple=True, type=_JOB_STATUSES, default=("dead",))
@click.option("--id", "ids", multiple=True, help="Only these outbox row ids (repeatable).")
def jobs_requeue(statuses: tuple[str, ...], ids: tuple[str, ...]) -> None:
    """Send rows again at the next sweep with a fresh retry window; their jobs are `queued`."""
    try:
        row_ids = [uuid.UUID(i) for i in ids] or None
    except ValueError:
        raise click.BadParameter("not a UUID", param_hint="--id") from None
    _bootstrap()
    from jobs.relay import requeue

    click.echo(json.dumps({"requeued": requeue(row_ids, statuses=statuses)}))


@main.group("counts")
def counts_group() -> None:
    """The maintained compliance counts (`assignment_counts`): check them, or rewrite them."""


def _org_ids(org_id: str | None) -> list[uuid.UUID]:
    if org_id is not None:
        try:
            return [uuid.UUID(org_id)]
        except ValueError:
            raise click.BadParameter("not a UUID", param_hint="--org") from None
    from sqlalchemy import select

    from tenancy.models import Organization

    with context.platform(), db.new_session() as session:
        return list(session.scalars(select(Organization.id).order_by(Organization.id)))


@counts_group.command("verify")
@click.option("--org", "org_id", default=None, help="Only this organization.")
def counts_verify(org_id: str | None) -> None:
    """Compare the counts with the assignments: one JSON line per organization; exit 1 if any
    count is wrong (then `certs counts rebuild`)."""
    _bootstrap()
    from certifications.reporting.counts import verify

    wrong = 0
    for oid in _org_ids(org_id):
        with context.tenant(oid), db.new_session() as session:
            found = verify(session)
        wrong += len(found)
        line = {"org_id": str(oid), "wrong": len(found), "mismatches": [m.__dict__ for m in found]}
        click.echo(json.dumps(line, default=str))
    if wrong:
        sys.exit(1)


@counts_group.command("rebuild")
@click.option("--org", "org_id", default=None, help="Only this organization.")
def counts_rebuild(org_id: str | None) -> None:
    """Rewrite the counts from the assignments, one transaction per organization."""
    _bootstrap()
    from certifications.reporting.counts import rebuild

    for oid in _org_ids(org_id):
        with context.tenant(oid), db.new_session() as session:
            keys = rebuild(session, oid)
            session.commit()
        click.echo(json.dumps({"org_id": str(oid), "keys": keys}))


@main.command("demo")
@click.option("--if-missing", is_flag=True, help="Reuse the demo organization if one exists.")
def demo(if_missing: bool) -> None:
    """Create a demo organization (directory, catalog, every status) and print a token for it."""
    settings = _settings()
    _bootstrap()
    org = _demo_org(if_missing=if_missing)
    _print_org_token(settings, org, sub="demo-admin", label="Demo organization")


def _demo_org(*, if_missing: bool) -> Any:
    """The demo organization: a new one, or (`if_missing`) the existing one if there is."""
    from cli.demo import create_demo, find_demo_org

    org = None
    if if_missing:
        with context.platform(), db.new_session() as session:
            org = find_demo_org(session)
    return org if org is not None else create_demo()


def _print_org_token(settings: Settings, org: Any, *, sub: str, label: str) -> None:
    """Print the organization and an all-scopes token for it (development conveniences)."""
    token = issue_token(
        settings, sub=sub, org_id=str(org.id), scopes=list(TENANT_SCOPES), ttl=_day(settings)
    )
    click.echo(f"{label}: {org.name} ({org.id})")
    click.echo(f"export TOKEN={token}")


@main.command("openapi")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Default: standard output.")
def openapi(output: str | None) -> None:
    """Print the OpenAPI document exactly as the API serves it at /api/v1/openapi.json."""
    from api import API_PREFIX, create_app

    app = create_app(_settings(), _bootstrap())
    resp = app.test_client().get(f"{API_PREFIX}/openapi.json")
    if resp.status_code != 200:
        raise click.ClickException(f"the document answered {resp.status_code}")
    text = resp.get_data(as_text=True)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        click.echo(text)


if __name__ == "__main__":
    main()
