"""Every cron line in the docs is one valid crontab entry, as cron reads it.

cron has no line continuation (a line ending in a backslash leaves the next line to be read as an
entry of its own, with a bad minute field, and cron ignores the whole file), and it turns an
unescaped ``%`` into a newline. The checker below reads the fenced blocks of every page, finds the
cron lines (five time fields, or an ``@daily``-style nickname) and checks each block holding one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)

NAMES = {"month": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
         "weekday": ("sun", "mon", "tue", "wed", "thu", "fri", "sat")}
#: (name, lowest, highest) of the five time fields
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("weekday", 0, 7))
NICKNAMES = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: a time field's shape: ``*``, numbers and three-letter names joined by ``,``, ``-`` and ``/``
TIME_FIELD = re.compile(r"^(\*|\d+|[a-zA-Z]{3})([,/-](\*|\d+|[a-zA-Z]{3}))*$")
ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")


def _looks_like_cron(line: str) -> bool:
    words = line.split()
    if not words:
        return False
    if words[0] in NICKNAMES:
        return True
    return len(words) > 5 and all(TIME_FIELD.match(w) for w in words[:5]) and words[0][0] in "*0123456789"


def _field_errors(name: str, low: int, high: int, text: str) -> list[str]:
    errors = []
    for part in text.split(","):
        body, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            errors.append(f"{name} {text!r}: bad step {step!r}")
        if body == "*":
            continue
        for value in body.split("-", 1):
            if value.lower() in NAMES.get(name, ()):
                continue
            if not value.isdigit() or not low <= int(value) <= high:
                errors.append(f"{name} {text!r}: {value!r} is not in {low}-{high}")
    return errors


def cron_line_errors(line: str, system: bool) -> list[str]:
    """What cron would refuse or misread in ``line`` (empty: one valid entry). ``system``: a
    /etc/cron.d file or /etc/crontab, whose entries name a user before the command."""
    words = line.split()
    if words[0].startswith("@"):
        if words[0] not in NICKNAMES:
            return [f"unknown nickname {words[0]!r}"]
        rest = words[1:]
    else:
        if len(words) < 6:
            return [f"{line!r}: five time fields and a command are needed"]
        errors = [e for (name, low, high), w in zip(FIELDS, words[:5]) for e in _field_errors(name, low, high, w)]
        if errors:
            return errors
        rest = words[5:]
    if system:
        if len(rest) < 2:
            return [f"{line!r}: a system crontab entry needs a user and a command"]
        rest = rest[1:]
    if not rest:
        return [f"{line!r}: no command"]
    errors = []
    if line.rstrip().endswith("\\"):
        errors.append(f"{line!r} ends with a backslash: cron has no line continuation")
    if re.search(r"(?<!\\)%", line):
        errors.append(f"{line!r}: an unescaped % (cron turns it into a newline): write \\%")
    return errors


def block_errors(block: str) -> list[str]:
    """Check a fenced block that holds at least one cron line: every line is a comment, blank, an
    environment assignment or one valid entry."""
    lines = block.splitlines()
    if not any(_looks_like_cron(line) for line in lines):
        return []
    system = "/etc/cron.d" in block or "/etc/crontab" in block
    errors = []
    after_entry = False
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or ENV_LINE.match(stripped):
            after_entry = False
        elif after_entry and line[0].isspace():
            errors.append(f"{line!r}: a continuation of the line before, which cron reads as an entry of its own")
        elif _looks_like_cron(stripped) or stripped.startswith("@"):
            errors.extend(cron_line_errors(stripped, system))
            after_entry = True
        else:
            after_entry = False
    return errors


def cron_blocks(page: Path) -> list[str]:
    return [b for b in BLOCK.findall(page.read_text(encoding="utf-8")) if any(map(_looks_like_cron, b.splitlines()))]


def test_the_operations_page_has_cron_lines_to_check() -> None:
    assert len(cron_blocks(ROOT / "docs" / "operations.md")) >= 2


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cron_line_is_one_valid_crontab_entry(page: Path) -> None:
    errors = [e for block in cron_blocks(page) for e in block_errors(block)]
    assert errors == [], f"{page.relative_to(ROOT)}: {errors}"


# -- the checker catches what cron refuses ---------------------------------------------------------
BROKEN = """# /etc/cron.d/uuid-forge
15 3 * * *  uf  set -a; . /etc/uuid-forge/env; set +a; /usr/local/bin/uuid-forge audit \\
    --metrics /var/lib/node_exporter/textfile_collector/uuid_forge_audit.prom >/dev/null
"""


@pytest.mark.parametrize(("block", "expected"), [
    (BROKEN, "ends with a backslash"),
    (BROKEN, "a continuation of the line before"),
    ("0 1 * * * uuid-forge audit -o /tmp/a-$(date +%F).json\n", "unescaped %"),
    ("60 1 * * * uuid-forge audit\n", "minute '60'"),
    ("0 24 * * * uuid-forge audit\n", "hour '24'"),
    ("# /etc/cron.d/x\n0 1 * * * uuid-forge\n", "needs a user and a command"),
    ("0 1 * * mon-fri\n", None),  # five fields, no command: not taken for a cron line at all
])
def test_the_checker_catches_what_cron_refuses(block: str, expected: str | None) -> None:
    errors = block_errors(block)
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


def test_a_valid_entry_passes() -> None:
    assert block_errors("*/15 2-4 1,15 jan-mar mon-fri  uuid-forge audit -o /tmp/a-$(date +\\%F).json\n") == []
    assert block_errors("@daily uuid-forge replay\n") == []
