"""What a scheduled report's email says: one message to the schedule's recipients with the
report attached (the digest's and reminders' wording is `digest_mail` and `messages`)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime

from certifications.automation.messages import one_line
from certifications.reporting.runs import ReportOut
from infra import database as db
from infra.settings import Settings

_TITLES = {"audit-pack": "Audit pack", "summary": "Compliance summary"}


def compose_report(out: ReportOut, settings: Settings) -> EmailMessage:
    org = one_line(out.org_name)
    title = _TITLES.get(out.kind, out.kind)
    scope = one_line(out.file.scope_name)
    msg = EmailMessage()
    msg["Subject"] = f"[{org}] {title}: {scope}, {out.on.isoformat()}"
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(one_line(r) for r in out.recipients)
    msg["Date"] = format_datetime(db.utcnow())
    domain = settings.mail_from.rpartition("@")[2] or "certifications.local"
    # Stable per run: a resend after a crash carries the same id (receiver dedupe).
    msg["Message-ID"] = f"<report-{out.run_id}@{domain}>"
    msg["X-Certs-Report-Run-Id"] = str(out.run_id)
    msg.set_content(
        "\n".join(
            [
                "Hello,",
                "",
                f"Attached: the {title.lower()} of {scope} as of {out.on.isoformat()}"
                f" ({out.file.filename}).",
                "",
                "You receive it because a scheduled report of this organization lists you.",
                f"— {org} certifications",
            ]
        )
    )
    maintype, _, subtype = out.file.content_type.partition(";")[0].partition("/")
    msg.add_attachment(
        out.file.data, maintype=maintype, subtype=subtype, filename=out.file.filename
    )
    return msg
