"""What a digest says: every reminder due to one recipient, grouped by site and certification,
with counts and dates (the one-reminder wording is `automation.messages`)."""

from __future__ import annotations

import html
from collections import defaultdict
from email.message import EmailMessage
from email.utils import format_datetime

from certifications.automation.digests import DigestItem, DigestOut
from certifications.automation.messages import one_line, relative_day
from infra import database as db
from infra.settings import Settings

_WHAT = {
    "before_expiry": "expires",
    "expired": "expired",
    "revoked": "revoked",
    "missing": "missing",
}


def grouped(items: list[DigestItem]) -> dict[str, dict[str, list[DigestItem]]]:
    """site → certification → items (by expiry date, then subject), each level sorted by name."""
    groups: dict[str, dict[str, list[DigestItem]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        groups[one_line(item.site)][one_line(item.certification_name)].append(item)
    return {
        site: {
            cert: sorted(rows, key=lambda i: (i.expires_on is None, i.expires_on, i.subject_name))
            for cert, rows in sorted(certs.items())
        }
        for site, certs in sorted(groups.items())
    }


def _line(item: DigestItem, out: DigestOut) -> str:
    what = _WHAT.get(item.trigger, item.trigger)
    when = item.expires_on
    date_text = f" {when.isoformat()} ({relative_day(when, out.today)})" if when else ""
    return f"{one_line(item.subject_name)} ({item.subject_type}): {what}{date_text}"


def compose_digest(out: DigestOut, settings: Settings) -> EmailMessage:
    groups = grouped(out.items)
    total = len(out.items)
    noun = "reminder" if total == 1 else "reminders"
    org = one_line(out.org_name)
    msg = EmailMessage()
    msg["Subject"] = f"[{org}] {total} certification {noun} ({out.period.replace(':', ' ')})"
    msg["From"] = settings.mail_from
    msg["To"] = one_line(out.recipient)
    msg["Date"] = format_datetime(db.utcnow())
    domain = settings.mail_from.rpartition("@")[2] or "certifications.local"
    # Stable per digest: a resend after a crash carries the same id (receiver dedupe).
    msg["Message-ID"] = f"<digest-{out.digest_id}@{domain}>"
    msg["X-Certs-Digest-Id"] = str(out.digest_id)
    lines = ["Hello,", "", f"{total} {noun} due to you as of {out.today.isoformat()}:", ""]
    body = ["<html><body><p>Hello,</p>", f"<p>{total} {noun} due to you as of {out.today}:</p>"]
    esc = html.escape
    for site, certs in groups.items():
        count = sum(len(rows) for rows in certs.values())
        lines.append(f"{site} ({count})")
        body.append(f"<h3>{esc(site)} ({count})</h3>")
        for cert, rows in certs.items():
            lines.append(f"  {cert} ({len(rows)})")
            body.append(f"<h4>{esc(cert)} ({len(rows)})</h4><ul>")
            for item in rows:
                lines.append(f"    - {_line(item, out)}")
                body.append(f"<li>{esc(_line(item, out))}</li>")
            body.append("</ul>")
        lines.append("")
    lines.append(f"— {org} certifications")
    body.append(f"<p>&mdash; {esc(org)} certifications</p></body></html>")
    msg.set_content("\n".join(lines))
    msg.add_alternative("".join(body), subtype="html")
    return msg
