"""The audit pack as a PDF (fpdf2) and as an XLSX workbook (XlsxWriter): same content.

Both libraries are pure Python and write the file in memory. The PDF uses the core Helvetica
font (no font files to ship): text outside Latin-1 is replaced by "?" there; the workbook keeps
every character.
"""

from __future__ import annotations

import io
from datetime import date, datetime, time
from typing import Any

import xlsxwriter
from fpdf import FPDF

from certifications.reporting.audit_pack import AuditPack, Figures

LABELS = {
    "valid": "Valid",
    "expires_soon": "Expires soon",
    "expired": "Expired",
    "missing": "Missing",
    "upcoming": "Upcoming",
    "revoked": "Revoked",
    "exempt": "Exempt",
}
# Cell colours of the matrix (RGB): the screen's traffic lights.
COLOURS = {
    "valid": (198, 239, 206),
    "expires_soon": (255, 235, 156),
    "expired": (255, 199, 206),
    "missing": (217, 217, 217),
    "upcoming": (189, 215, 238),
    "revoked": (166, 166, 166),
    "exempt": (242, 242, 242),
}
ORDER = ("valid", "expires_soon", "expired", "missing", "upcoming", "revoked")
MATRIX_COLUMNS = 6  # certifications per block of the PDF matrix


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _scope_line(pack: AuditPack) -> str:
    return f"{pack.scope.kind.title()}: {pack.scope.name}"


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


# --- PDF ---------------------------------------------------------------------------------------


class _Pdf(FPDF):
    def __init__(self, footer: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self._footer = footer
        self.set_auto_page_break(auto=True, margin=15)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.cell(0, 8, _latin(f"{self._footer} - page {self.page_no()}"), align="C")


def _latin(text: Any) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


def _row(
    pdf: FPDF, cells: list[tuple[float, str]], *, bold: bool = False, fill: Any = None
) -> None:
    pdf.set_font("Helvetica", style="B" if bold else "", size=9)
    if fill is not None:
        pdf.set_fill_color(*fill)
    for width, text in cells:
        pdf.cell(
            width, 7, _latin(text), border=1, fill=fill is not None, new_x="RIGHT", new_y="TOP"
        )
    pdf.ln(7)


def _table(
    pdf: FPDF, widths: list[float], header: list[str], rows: list[list[str]], empty: str
) -> None:
    _row(pdf, list(zip(widths, header, strict=True)), bold=True)
    for values in rows:
        _row(pdf, list(zip(widths, values, strict=True)))
    if not rows:
        pdf.cell(0, 8, empty, new_x="LMARGIN", new_y="NEXT")


def _heading(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", style="B", size=14)
    pdf.cell(0, 10, _latin(text), new_x="LMARGIN", new_y="NEXT")


def _figures_cells(f: Figures) -> list[str]:
    return [*(str(f.counts[s]) for s in ORDER), str(f.exempt), _pct(f.compliance)]


def render_pdf(pack: AuditPack) -> bytes:
    pdf = _Pdf(f"{pack.org_name} - {_scope_line(pack)} - as of {pack.on.isoformat()}")
    pdf.set_title(_latin(f"Audit pack - {pack.scope.name}"))
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=24)
    pdf.cell(0, 16, "Compliance audit pack", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=14)
    for line in (
        f"Organization: {pack.org_name}",
        _scope_line(pack),
        f"As of: {pack.on.isoformat()} (end of day, organization time zone)",
        f"Generated: {pack.generated_at.strftime('%Y-%m-%d %H:%M UTC')}",
        f"Members: {len(pack.members)}   Certifications: {len(pack.certifications)}",
        f"Compliance: {_pct(pack.totals.compliance)} "
        f"({pack.totals.compliant} of {pack.totals.required} required)",
    ):
        pdf.cell(0, 9, _latin(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _summary_pdf(pdf, pack)
    pdf.add_page()
    _trend_pdf(pdf, pack)
    pdf.add_page()
    _matrix_pdf(pdf, pack)
    pdf.add_page()
    names = {m[0]: m[2] for m in pack.members}
    _heading(pdf, "Exemptions")
    _table(
        pdf,
        [55.0, 55.0, 80.0, 25.0, 25.0, 37.0],
        ["Member", "Certification", "Reason", "Since", "Until", "By"],
        [
            [
                names.get(e["subject_id"], ""),
                e["certification"],
                e["reason"],
                e["since"].isoformat(),
                e["until"].isoformat() if e["until"] else "-",
                e["by"],
            ]
            for e in pack.exemptions
        ],
        "None on this day.",
    )
    pdf.ln(6)
    _heading(pdf, "Documents")
    _table(
        pdf,
        [45.0, 45.0, 12.0, 55.0, 120.0],
        ["Member", "Certification", "Cycle", "File", "SHA-256"],
        [
            [
                names.get(d["subject_id"], ""),
                d["certification"],
                str(d["cycle"]),
                d["filename"],
                d["sha256"],
            ]
            for d in pack.documents
        ],
        "None on record on this day.",
    )
    return bytes(pdf.output())


def _summary_pdf(pdf: FPDF, pack: AuditPack) -> None:
    _heading(pdf, "Compliance summary")
    widths = [80.0] + [22.0] * 8
    header = ["Certification", *(LABELS[s] for s in ORDER), "Exempt", "Compliance"]
    _row(pdf, list(zip(widths, header, strict=True)), bold=True)
    for name, f in pack.by_certification:
        _row(pdf, list(zip(widths, [name, *_figures_cells(f)], strict=True)))
    _row(pdf, list(zip(widths, ["All", *_figures_cells(pack.totals)], strict=True)), bold=True)


def _trend_pdf(pdf: FPDF, pack: AuditPack) -> None:
    _heading(pdf, "Compliance over 12 months")
    left, top, height, bar = 25.0, pdf.get_y() + 5, 100.0, 16.0
    pdf.set_draw_color(120, 120, 120)
    pdf.line(left, top + height, left + 12 * (bar + 4), top + height)
    pdf.set_font("Helvetica", size=8)
    for i, (day, f) in enumerate(pack.trend):
        x = left + i * (bar + 4)
        share = f.compliance or 0.0
        h = max(height * share, 0.5)
        pdf.set_fill_color(84, 130, 53)
        pdf.rect(x, top + height - h, bar, h, style="F")
        pdf.set_xy(x - 2, top + height - h - 5)
        pdf.cell(bar + 4, 5, _pct(f.compliance), align="C")
        pdf.set_xy(x - 2, top + height + 1)
        pdf.cell(bar + 4, 5, day.strftime("%b %y"), align="C")
        pdf.set_xy(x - 2, top + height + 6)
        pdf.cell(bar + 4, 5, f"{f.compliant}/{f.required}", align="C")
    pdf.set_xy(pdf.l_margin, top + height + 14)


def _matrix_pdf(pdf: FPDF, pack: AuditPack) -> None:
    _heading(pdf, "Members and certifications")
    certs = pack.certifications
    for start in range(0, max(len(certs), 1), MATRIX_COLUMNS):
        block = certs[start : start + MATRIX_COLUMNS]
        widths = [70.0] + [34.0] * len(block)
        _row(pdf, list(zip(widths, ["Member", *(n for _, n in block)], strict=True)), bold=True)
        for sid, _kind, name in pack.members:
            pdf.set_font("Helvetica", size=8)
            pdf.cell(widths[0], 7, _latin(name), border=1, new_x="RIGHT", new_y="TOP")
            for cid, _n in block:
                cell = pack.cells.get((sid, cid))
                if cell is None:
                    pdf.cell(34, 7, "", border=1, new_x="RIGHT", new_y="TOP")
                    continue
                status, expires, exempt = cell
                key = "exempt" if exempt else status
                pdf.set_fill_color(*COLOURS[key])
                text = LABELS[key] + (f" {expires.isoformat()}" if expires else "")
                pdf.cell(34, 7, _latin(text), border=1, fill=True, new_x="RIGHT", new_y="TOP")
            pdf.ln(7)
        pdf.ln(4)


# --- XLSX --------------------------------------------------------------------------------------


def render_xlsx(pack: AuditPack) -> bytes:
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    bold = book.add_format({"bold": True})
    title = book.add_format({"bold": True, "font_size": 18})
    pct = book.add_format({"num_format": "0.0%"})
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    colours = {k: book.add_format({"bg_color": _hex(v), "border": 1}) for k, v in COLOURS.items()}

    cover = book.add_worksheet("Cover")
    cover.set_column(0, 0, 28)
    cover.set_column(1, 1, 50)
    cover.write(0, 0, "Compliance audit pack", title)
    lines: list[tuple[str, Any]] = [
        ("Organization", pack.org_name),
        ("Scope", _scope_line(pack)),
        ("As of", pack.on.isoformat()),
        ("Generated (UTC)", pack.generated_at.strftime("%Y-%m-%d %H:%M")),
        ("Members", len(pack.members)),
        ("Certifications", len(pack.certifications)),
        ("Required", pack.totals.required),
        ("Compliant", pack.totals.compliant),
    ]
    for i, (k, v) in enumerate(lines, start=2):
        cover.write(i, 0, k, bold)
        cover.write(i, 1, v)
    cover.write(len(lines) + 2, 0, "Compliance", bold)
    if pack.totals.compliance is not None:
        cover.write_number(len(lines) + 2, 1, pack.totals.compliance, pct)

    summary = book.add_worksheet("Summary")
    header = ["Certification", *(LABELS[s] for s in ORDER), "Exempt", "Required", "Compliant",
              "Compliance"]  # fmt: skip
    summary.write_row(0, 0, header, bold)
    summary.set_column(0, 0, 36)
    rows = [*pack.by_certification, ("All", pack.totals)]
    for i, (name, f) in enumerate(rows, start=1):
        summary.write_row(i, 0, [name, *(f.counts[s] for s in ORDER), f.exempt, f.required,
                                 f.compliant])  # fmt: skip
        if f.compliance is not None:
            summary.write_number(i, len(header) - 1, f.compliance, pct)

    trend = book.add_worksheet("Trend")
    trend.write_row(0, 0, ["Day", "Required", "Compliant", "Compliance"], bold)
    trend.set_column(0, 0, 12)
    for i, (d, f) in enumerate(pack.trend, start=1):
        trend.write_datetime(i, 0, _midnight(d), day)
        trend.write_row(i, 1, [f.required, f.compliant])
        trend.write_number(i, 3, f.compliance or 0.0, pct)
    chart = book.add_chart({"type": "column"})
    n = len(pack.trend)
    chart.add_series(
        {
            "name": "Compliance",
            "categories": ["Trend", 1, 0, n, 0],
            "values": ["Trend", 1, 3, n, 3],
            "fill": {"color": "#548235"},
        }
    )
    chart.set_title({"name": "Compliance over 12 months"})
    chart.set_y_axis({"min": 0, "max": 1, "num_format": "0%"})
    chart.set_legend({"none": True})
    trend.insert_chart("F2", chart, {"x_scale": 1.6, "y_scale": 1.3})

    matrix = book.add_worksheet("Matrix")
    matrix.set_column(0, 0, 30)
    matrix.set_column(1, max(len(pack.certifications), 1), 22)
    matrix.write_row(0, 0, ["Member", *(n for _, n in pack.certifications)], bold)
    for r, (sid, _kind, name) in enumerate(pack.members, start=1):
        matrix.write(r, 0, name)
        for c, (cid, _n) in enumerate(pack.certifications, start=1):
            cell = pack.cells.get((sid, cid))
            if cell is None:
                continue
            status, expires, exempt = cell
            key = "exempt" if exempt else status
            text = LABELS[key] + (f" {expires.isoformat()}" if expires else "")
            matrix.write(r, c, text, colours[key])

    names = {m[0]: m[2] for m in pack.members}
    ex = book.add_worksheet("Exemptions")
    ex.write_row(0, 0, ["Member", "Certification", "Reason", "Since", "Until", "By"], bold)
    for i, e in enumerate(pack.exemptions, start=1):
        ex.write_row(i, 0, [names.get(e["subject_id"], ""), e["certification"], e["reason"],
                            e["since"].isoformat(), e["until"].isoformat() if e["until"] else "",
                            e["by"]])  # fmt: skip
    docs = book.add_worksheet("Documents")
    docs.write_row(0, 0, ["Member", "Certification", "Cycle", "File", "Bytes", "SHA-256",
                          "Uploaded (UTC)"], bold)  # fmt: skip
    for i, doc in enumerate(pack.documents, start=1):
        values = [
            names.get(doc["subject_id"], ""),
            doc["certification"],
            doc["cycle"],
            doc["filename"],
            doc["size"],
            doc["sha256"],
            doc["uploaded_at"].strftime("%Y-%m-%d %H:%M"),
        ]
        docs.write_row(i, 0, values)
    book.close()
    return buf.getvalue()


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time())
