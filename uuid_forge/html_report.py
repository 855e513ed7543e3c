"""``audit --html FILE``: one self-contained page to look at an audit.

Why one file with nothing external: it is mailed, attached to a ticket or opened from a cron
host's disk, often offline. So the CSS is inline, the chart is inline SVG, there is no script,
and a Content-Security-Policy forbids loading anything at all.

What it shows: the verdict, the stores x classes table, a bar chart of findings per store, the
slowest partitions, samples per class (store, type, ID, detail) and the foreign entries.
Every text from a store or the configuration is HTML-escaped (a store name or a key holding
``<script>`` stays text). Values that may be data are masked unless ``show_values``: raw keys,
paths and ``_id`` values, foreign entries' names and quoted text in details keep only their
shape (first character of each word, separators, UUIDs); IDs of ours are shown, since an ID
is not data. URL credentials are masked in any case. The file is written like every private
file: atomically, mode 0600, never through a symlink.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .masking import Masker, mask_value
from .privatefile import write_private
from .urls import mask_text

if TYPE_CHECKING:
    from .report import AuditReport, Finding

__all__ = ["COLORS", "mask_value", "render", "write"]

#: class -> bar/cell colour (colour-blind-friendly, readable on white)
COLORS = {"ok": "#2e7d32", "missing": "#c62828", "orphan": "#ef6c00", "stale": "#6a1b9a",
          "malformed": "#1565c0", "foreign": "#757575", "unproven": "#ad1457", "deleted": "#4e342e",
          "stray_type": "#8d6e63"}
FINDING_CLASSES = ("missing", "orphan", "stale", "malformed", "deleted")
SAMPLES = 10  # rows per class
SLOWEST = 10  # partitions listed

_CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1f2328;
 background:#f6f8fa;margin:0;padding:24px}
main{max-width:1120px;margin:0 auto}
header{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:18px 22px;margin-bottom:18px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:17px;margin:0 0 12px}
h3{font-size:15px;margin:16px 0 8px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 22px;margin-bottom:18px}
.meta{color:#57606a;margin:0}
.meta b{color:#1f2328;font-weight:600}
.verdict{display:inline-block;padding:3px 12px;border-radius:999px;font-weight:700;font-size:14px;
 margin-right:10px;vertical-align:2px}
.good{background:#dafbe1;color:#116329;border:1px solid #4ac26b}
.bad{background:#ffebe9;color:#a40e26;border:1px solid #ff8182}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600;font-size:13px;color:#424a53;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.hot{font-weight:700}
tbody th{background:none;font-size:15px;color:#1f2328}
table.samples{table-layout:fixed}
.dot{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:0}
code,.id{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
 word-break:break-all}
.detail{color:#424a53;font-size:13px;word-break:break-word}
.note{color:#57606a;font-size:13px;margin:8px 0 0}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px;margin:6px 0}
.err{background:#ffebe9;border:1px solid #ff8182;border-radius:6px;padding:8px 12px;margin:6px 0}
.legend span{margin-right:16px;font-size:13px;white-space:nowrap}
.bar{background:#eaeef2;border-radius:3px;height:10px;min-width:60px}
.bar i{display:block;height:10px;border-radius:3px;background:#0969da}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
footer{color:#57606a;font-size:12px;text-align:center;margin-top:8px}
"""


def _e(value: Any) -> str:
    """Escape for HTML text and attribute values alike (quotes included)."""
    return html.escape(str(value), quote=True)


def _fmt_seconds(s: float) -> str:
    return f"{s:.3f}s" if s < 10 else f"{s:.1f}s"


def _counts_table(report: AuditReport, classes: tuple[str, ...]) -> str:
    head = "".join(f'<th class="n"><span class="dot" style="background:{COLORS[c]}"></span>{c}</th>'
                   for c in classes)
    rows = []
    for store, counts in report.stores.items():
        cells = []
        for c in classes:
            n = counts[c]
            hot = n and c in FINDING_CLASSES
            style = f' style="color:{COLORS[c]}"' if hot else ""
            cells.append(f'<td class="n{" hot" if hot else ""}"{style}>{n:,}</td>')
        total = sum(counts[c] for c in FINDING_CLASSES)
        rows.append(f"<tr><th scope=\"row\">{_e(store)}</th>{''.join(cells)}<td class=\"n\">{total:,}</td></tr>")
    return (f'<table><thead><tr><th>store</th>{head}<th class="n">findings</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _hashed(report: AuditReport) -> str:
    """Per store compared by hashes computed in the stores (uuid_forge.rangehash): what the range
    hashes settled and what was still read record by record, so a reader sees why the audit was fast
    (or why a drifted store was read)."""
    from .report import HASHED

    if not report.hashed:
        return ('<p class="note">No store was compared by hashes (hashing off, or no store hashes what it '
                "holds as the source does): every record was read.</p>")
    head = "".join(f'<th class="n">{_e(k.replace("_", " "))}</th>' for k in HASHED)
    rows = "".join(f"<tr><th scope=\"row\">{_e(store)}</th>"
                   + "".join(f'<td class="n">{counts[k]:,}</td>' for k in HASHED) + "</tr>"
                   for store, counts in report.hashed.items())
    return (f'<table><thead><tr><th>store</th>{head}</tr></thead><tbody>{rows}</tbody></table>'
            '<p class="note">hashed: ranges and records whose per-range hashes agreed in the source and the '
            "store, settled without reading a record; read: ranges that differed, read and compared record by "
            "record.</p>")


def _chart(report: AuditReport) -> str:
    """Horizontal stacked bars: findings per store, one colour per class, the total at the end."""
    stores = list(report.stores.items())
    width, label_w, right_w, row_h, top = 1000, 190, 90, 34, 8
    plot_w = width - label_w - right_w
    height = top * 2 + max(1, len(stores)) * row_h
    most = max((sum(c[k] for k in FINDING_CLASSES) for _, c in stores), default=0)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="chart-title" '
              f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" class="chart">'),
             '<title id="chart-title">Findings per store</title>']
    for i, (store, counts) in enumerate(stores):
        y = top + i * row_h
        name = store if len(store) <= 24 else store[:23] + "…"
        parts.append(f'<text x="{label_w - 10}" y="{y + row_h / 2 + 5:.1f}" text-anchor="end" font-size="14" '
                     f'fill="#1f2328"><title>{_e(store)}</title>{_e(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 5}" width="{plot_w}" height="{row_h - 10}" rx="3" '
                     'fill="#f0f2f4"/>')
        x = float(label_w)
        total = 0
        for cls in FINDING_CLASSES:
            n = counts[cls]
            if not n:
                continue
            total += n
            w = max(2.0, plot_w * n / most)
            parts.append(f'<rect class="bar bar-{cls}" x="{x:.1f}" y="{y + 5}" width="{w:.1f}" height="{row_h - 10}" '
                         f'fill="{COLORS[cls]}"><title>{_e(store)}: {n:,} {cls}</title></rect>')
            x += w
        label = f"{total:,}" if total else "0 ✓"
        colour = "#1f2328" if total else COLORS["ok"]
        parts.append(f'<text x="{min(x, label_w + plot_w) + 8:.1f}" y="{y + row_h / 2 + 5:.1f}" font-size="14" '
                     f'font-weight="600" fill="{colour}">{_e(label)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><span class="dot" style="background:{COLORS[c]}"></span>{c}</span>'
                     for c in FINDING_CLASSES)
    empty = "" if most else '<p class="note">No findings: every audited store agrees with the source.</p>'
    return f'<div class="legend">{legend}</div>{"".join(parts)}{empty}'


def _slowest(report: AuditReport) -> str:
    times = sorted(report.partition_times, key=lambda p: p[2], reverse=True)[:SLOWEST]
    if not times:
        return '<p class="note">No partition timings (a point audit, or nothing to audit).</p>'
    top = times[0][2] or 1.0
    rows = "".join(
        f"<tr><td>{_e(et)}</td><td><code>{_e(part)}</code></td><td class=\"n\">{records:,}</td>"
        f"<td class=\"n\">{_fmt_seconds(sec)}</td>"
        f"<td class=\"n\">{(records / sec if sec > 0 else 0):,.0f}</td>"
        f"<td style=\"width:30%\"><div class=\"bar\"><i style=\"width:{100 * sec / top:.1f}%\"></i></div></td></tr>"
        for et, part, sec, records in times)
    total = len(report.partition_times)
    return ("<table><thead><tr><th>entity type</th><th>partition</th><th class=\"n\">source records</th>"
            "<th class=\"n\">seconds</th><th class=\"n\">records/s</th><th>time</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            f'<p class="note">{len(times)} slowest of {total} partition{"" if total == 1 else "s"}; each time covers '
            "reading the source's partition and comparing every store's same range.</p>")


def _round_robin(findings: Iterable[Finding], limit: int) -> list[Finding]:
    """Up to ``limit`` findings, taken from each store in turn so that one store does not hide the others."""
    by_store: dict[str, list[Finding]] = {}
    for f in findings:
        by_store.setdefault(f.store, []).append(f)
    picked: list[Finding] = []
    queues = [iter(v) for v in by_store.values()]
    while queues and len(picked) < limit:
        for q in list(queues):
            item = next(q, None)
            if item is None:
                queues.remove(q)
            elif len(picked) < limit:
                picked.append(item)
    return picked


def _samples(report: AuditReport, masker: Masker) -> str:
    out = []
    for cls in FINDING_CLASSES:
        total = sum(c[cls] for c in report.stores.values())
        if not total:
            continue
        picked = _round_robin((f for f in report.findings if f.kind == cls), SAMPLES)
        rows = "".join(
            f"<tr><td>{_e(f.store)}</td><td>{_e(f.entity_type)}</td><td class=\"id\">{_e(masker.ident(f.id))}"
            + (f"<br><span class=\"key\">{_e(masker.key_text(f.key))}</span>" if f.key is not None else "") + "</td>"
            f"<td class=\"detail\">{_e(masker.detail(f.detail, f.raw))}"
            + (f"<br><code>{_e(masker.raw(f.raw))}</code>" if f.raw and f.raw != f.id else "") + "</td></tr>"
            for f in picked)
        out.append(f'<h3 id="class-{cls}"><span class="dot" style="background:{COLORS[cls]}"></span>{cls}: '
                   f"{total:,} (showing {len(picked)})</h3>"
                   '<table class="samples"><thead><tr><th style="width:20%">store</th><th style="width:13%">entity type'
                   '</th><th style="width:32%">ID and key</th><th>detail</th></tr></thead>'
                   f"<tbody>{rows}</tbody></table>")
    if not out:
        return '<p class="note">No findings.</p>'
    return "".join(out)


def _foreign(report: AuditReport, masker: Masker) -> str:
    rows = []
    for store, counts in report.stores.items():
        n = counts["foreign"]
        if not n:
            continue
        shown = "".join(f"<li><code>{_e(masker.sample(s))}</code></li>" for s in report.foreign_samples.get(store, []))
        rows.append(f"<tr><td>{_e(store)}</td><td class=\"n\">{n:,}</td><td><ul style=\"margin:0;padding-left:18px\">"
                    f"{shown}</ul></td></tr>")
    if not rows:
        return '<p class="note">None: every entry under the audited types was written by uuid-forge.</p>'
    return ('<table><thead><tr><th>store</th><th class="n">entries</th><th>samples</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            '<p class="note">Entries not written by uuid-forge (other applications\' keys, files, documents): '
            "reported, never repaired or deleted.</p>")


def render(report: AuditReport, *, final: AuditReport | None = None, show_values: bool = False,
           generated: _dt.datetime | None = None) -> str:
    """The page for ``report`` (the audit as found) and ``final`` (the audit after a repair, if any)."""
    from . import idmarker
    from .report import CLASSES

    masker = Masker(show_values)
    when = (generated or _dt.datetime.now(_dt.UTC)).strftime("%Y-%m-%d %H:%M:%S %Z")
    verdict = final if final is not None else report
    good = verdict.consistent
    types = ", ".join(report.entity_types) or "nothing"
    badge = (f'<span class="verdict {"good" if good else "bad"}">{"consistent" if good else "inconsistent"}</span>')
    total = sum(c[k] for c in report.stores.values() for k in FINDING_CLASSES)
    left = (sum(c[k] for c in final.stores.values() for k in FINDING_CLASSES) if final is not None else None)
    found = f"{total:,} finding{'' if total == 1 else 's'}"
    found += "" if left is None else f" &middot; <b>{left:,}</b> left after repair"
    chart_title = "Findings per store" + (" (as found, before repair)" if final is not None else "")
    notes = []
    for c in report.id_config:
        line = mask_text(idmarker.summary_line(c) or c["message"])
        notes.append(f'<div class="err">ID configuration: {_e(line)}</div>')
    for st in report.stray_types:  # one per store and type (uuid_forge.strays): names masked unless show_values
        shown = ", ".join(masker.raw(x) for x in st["samples"][:3])
        notes.append(f'<div class="err">stray type: {_e(mask_text(st["message"]))}'
                     + (f" (e.g. <code>{_e(shown)}</code>)" if shown else "") + "</div>")
    for w in report.warnings:
        notes.append(f'<div class="warn">{_e(mask_text(w))}</div>')
    for e in report.repair_errors:
        notes.append(f'<div class="err">repair error: {_e(mask_text(e))}</div>')
    if report.truncated:
        notes.append(f'<div class="warn">{report.truncated:,} more findings were counted but not kept; '
                     "the samples come from the first ones.</div>")
    repaired = ""
    if report.repaired:
        rows = "".join(f"<tr><td>{_e(s)}</td><td>{_e(', '.join(f'{k}: {v:,}' for k, v in c.items()) or 'nothing')}"
                       "</td></tr>" for s, c in report.repaired.items())
        repaired = ("<section><h2>Repair</h2><table><thead><tr><th style=\"width:30%\">store</th><th>done</th></tr></thead>"
                    f"<tbody>{rows}</tbody></table>"
                    + (f"<h3>After repair</h3>{_counts_table(final, CLASSES)}" if final is not None else "")
                    + "</section>")
    masked = ("Values are shown (--show-values)." if show_values else
              "Values are masked: raw keys, names and quoted text keep only their shape; "
              "run with --show-values to see them.")
    body = f"""<main>
<header>
<h1>{badge}uuid-forge audit</h1>
<p class="meta"><b>{_e(types)}</b> against source <b>{_e(report.source)}</b> &middot;
{len(report.stores)} store{"" if len(report.stores) == 1 else "s"} &middot; {found}
&middot; {report.partitions:,} partition{"" if report.partitions == 1 else "s"} in {_fmt_seconds(report.seconds)}
&middot; {_e(when)}</p>
{"".join(notes)}
</header>
<section><h2>Stores &times; classes</h2>{_counts_table(report, CLASSES)}
<p class="note">ok: present with the source's fingerprint; missing: in the source, not in the store; orphan: in
the store, not in the source; stale: the data differs; malformed: an ID of ours in the wrong form; foreign: not
written by uuid-forge (not an inconsistency); stray_type: entries of a type the source neither declares nor
holds (see the notes above; never repaired).</p></section>
<section><h2>{chart_title}</h2>{_chart(report)}</section>
<section><h2>Compared by hashes</h2>{_hashed(report)}</section>
{repaired}
<section><h2>Slowest partitions</h2>{_slowest(report)}</section>
<section><h2>Samples per class</h2>{_samples(report, masker)}<p class="note">{_e(masked)}</p></section>
<section><h2>Foreign entries</h2>{_foreign(report, masker)}</section>
<footer>uuid-forge audit report &middot; self-contained: no scripts, no external resources</footer>
</main>"""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="robots" content="noindex">
<title>uuid-forge audit: {_e(types)} ({"consistent" if good else "inconsistent"})</title>
<style>{_CSS}</style>
</head>
<body>
{body}
</body>
</html>
"""


def write(path: str, report: AuditReport, *, final: AuditReport | None = None, show_values: bool = False) -> None:
    """Write the page to ``path``: atomically, mode 0600, refusing a symlink (it may hold findings' details)."""
    write_private(path, render(report, final=final, show_values=show_values), "--html")
