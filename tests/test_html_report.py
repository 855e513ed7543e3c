"""audit --html: escaping, masking and the page's structure (the browser test is in integration/)."""

from __future__ import annotations

import json
import re
import stat
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from uuid_forge import html_report
from uuid_forge.audit import CLASSES, AuditReport, Finding

from .scaffold import write_forge_toml
from .test_cli import run

EVIL = "<script>alert('x')</script>"
ID = "645c67f9-eab3-5fa4-9dd4-2b3542dc8dc7"
SALT = {"UUID_FORGE_SALT": "html-test-salt-0123456789"}


class Page(HTMLParser):
    """Tags, attributes and text of a page; fails on unbalanced tags (void elements aside)."""

    VOID = frozenset({"meta", "br", "link", "img", "input", "hr"})

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()
        assert self.stack == [], f"unclosed tags: {self.stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def report() -> AuditReport:
    r = AuditReport(stores={EVIL: Counter({k: 0 for k in CLASSES}), "cache": Counter({k: 0 for k in CLASSES})},
                    source="db", entity_types=["user"], partitions=3, seconds=1.5)
    r.add(Finding(EVIL, "user", ID, "missing", "in the source, not in this store"))
    r.add(Finding("cache", "user", ID, "stale", "fingerprint aa != source bb <b>bold</b>"))
    r.add(Finding("cache", "user", ID, "malformed", "key 'user:JOHN@EXAMPLE.COM' holds the ID in hex form",
                  raw="user:JOHN@EXAMPLE.COM"))
    r.add(Finding("cache", "user", "session:jane@example.org", "foreign", "not ours",
                  raw="session:jane@example.org"))
    for i in range(4):
        r.add(Finding("cache", "user", f"00000000-0000-5000-8000-00000000000{i}", "orphan", "not in the source"))
    r.partition_times = [("user", "1/3", 0.2, 10), ("user", "2/3", 0.9, 12), ("user", "3/3", 0.4, 11)]
    r.warnings = ["source <i>warning</i>"]
    return r


def test_everything_is_escaped_and_nothing_runs() -> None:
    text = html_report.render(report())
    page = Page(text)
    assert "<script" not in text.lower() and EVIL not in text
    assert "&lt;script&gt;" in text  # the store's name is shown, as text
    assert page.named("script") == []
    shown = "".join(page.text)  # markup in names and details arrives as text, not as tags
    assert EVIL in shown and "source bb <b>bold</b>" in shown and "source <i>warning</i>" in shown
    for attrs in (a for _, a in page.tags):  # nothing loaded from anywhere, no handlers
        assert not any(k.startswith("on") for k in attrs)
        assert not any(v and re.match(r"\s*(https?:|//|javascript:)", v) for k, v in attrs.items()
                       if k in ("src", "href", "xlink:href"))
    csp = [a for a in page.named("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")


def test_values_are_masked_unless_asked() -> None:
    masked = html_report.render(report())
    for secret in ("JOHN@EXAMPLE.COM", "jane@example.org", "example"):
        assert secret not in masked
    assert ID in masked  # our IDs are not data
    assert "s••••••:j•••@e••••••.o••" in masked
    shown = html_report.render(report(), show_values=True)
    assert "user:JOHN@EXAMPLE.COM" in shown and "session:jane@example.org" in shown


def test_mask_value_keeps_shape_and_uuids() -> None:
    assert html_report.mask_value("session:john@example.com") == "s••••••:j•••@e••••••.c••"
    assert html_report.mask_value(f"user:{ID.upper()}") == f"u•••:{ID.upper()}"


def test_structure_table_chart_partitions_samples() -> None:
    r = report()
    page = Page(html_report.render(r))
    text = "".join(page.text)
    assert "inconsistent" in text and "Stores × classes" in text
    bars = [a for a in page.named("rect") if "bar" in (a.get("class") or "")]
    # one bar per (store, class) with findings: missing on EVIL; stale, malformed, orphan on cache
    assert sorted(a["class"] for a in bars) == ["bar bar-malformed", "bar bar-missing", "bar bar-orphan",
                                                 "bar bar-stale"]
    assert all(float(a["width"] or 0) > 0 for a in bars)
    # slowest partition first
    assert text.index("2/3") < text.index("3/3") < text.index("1/3")
    for cls in ("missing", "orphan", "stale", "malformed"):
        assert any(a.get("id") == f"class-{cls}" for _, a in page.tags)
    assert "orphan: 4 (showing 4)" in text
    assert "Foreign entries" in text and "source <i>warning</i>" in text  # warning shown as text


def test_consistent_report_has_no_bars() -> None:
    r = AuditReport(stores={"cache": Counter({k: 0 for k in CLASSES})}, source="db", entity_types=["user"])
    r.stores["cache"]["ok"] = 10
    page = Page(html_report.render(r))
    assert not [a for a in page.named("rect") if "bar" in (a.get("class") or "")]
    assert "No findings" in "".join(page.text) and "consistent" in "".join(page.text)


def _config(tmp_path: Path) -> str:
    return str(write_forge_toml(tmp_path / "uuid-forge.toml",
                                {"db": f"sqlite:///{tmp_path}/db.sqlite3",
                                 "files": {"url": f"file://{tmp_path}/files", "options": {"fsync": False}}}, "db"))


def test_cli_html_private_file_and_flags(tmp_path: Path) -> None:
    conf = _config(tmp_path)
    assert run(["write", "-c", conf, "user", "-k", "email=a@example.com", "-d", "n:=1"], SALT)[0] == 0
    next((tmp_path / "files").rglob("*.json")).unlink()
    out = tmp_path / "report.html"
    code, stdout, _ = run(["audit", "-c", conf, "--html", str(out), "--json"], SALT)
    assert code == 1 and json.loads(stdout)["stores"]["files"]["missing"] == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    page = Page(out.read_text())
    assert len([a for a in page.named("rect") if a.get("class") == "bar bar-missing"]) == 1

    code, _, err = run(["audit", "-c", conf, "--show-values"], SALT)  # also the findings' values: no --html needed
    assert code == 1 and "Usage" not in err

    target = tmp_path / "precious.txt"
    target.write_text("keep")
    (tmp_path / "link.html").symlink_to(target)
    code, _, err = run(["audit", "-c", conf, "--html", str(tmp_path / "link.html")], SALT)
    assert code == 2 and "symbolic link" in err and target.read_text() == "keep"


def test_hashed_counters_shown_per_store() -> None:
    r = report()
    r.hashed = {"cache": Counter(hashed_ranges=12, hashed_records=1234, read_ranges=1, read_records=56)}
    page = Page(html_report.render(r))
    text = " ".join(page.text)
    assert "Compared by hashes" in text and "1,234" in text and "56" in text
    none = " ".join(Page(html_report.render(report())).text)  # nothing hashed: said so, not an empty table
    assert "No store was compared by hashes" in none
