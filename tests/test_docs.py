"""The README is a front page whose tour really runs, and docs/README.md indexes every page.

The tour is run as a new user would: its shell blocks in an empty folder, with the installed
``uuid-forge``, then its Python blocks in the same folder. Links between the pages are checked
down to their anchors, so a renamed heading or a moved page fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted([README, ROOT / "BENCHMARKS.md", *DOCS.glob("*.md")])

# the README's two commands for a fresh machine: their wording is the contract
INSTALL_AND_DEMO = "python3 -m pip install -e . && python3 -m uuid_forge demo"
INSTALL_AND_TEST = 'python3 -m pip install -e ".[all,test]" && python3 -m pytest'

LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    prose = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", prose, re.MULTILINE)}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


def tour() -> list[tuple[str, str]]:
    """The (language, body) of each fenced block under the README's "A short tour"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## A short tour\n", 1)[1].split("\n## ", 1)[0]
    return BLOCK.findall(section)


def test_the_readme_is_a_front_page_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 130, "the README is a front page: move the detail to docs/"
    blocks = [body.strip() for lang, body in BLOCK.findall(text) if lang == "sh"]
    assert blocks[:2] == [INSTALL_AND_DEMO, INSTALL_AND_TEST]
    for heading in ("## Two commands", "## A short tour", "## Documentation"):
        assert f"\n{heading}\n" in text
    assert "](docs/README.md)" in text


def test_the_docs_index_lists_every_page() -> None:
    index = DOCS / "README.md"
    listed = {target.split("#")[0] for target in links(index) if "/" not in target}
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert pages - listed == set(), "pages missing from docs/README.md"
    assert listed - pages - {""} == set(), "docs/README.md lists pages that do not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading gives #{anchor}")
    assert broken == [], f"{page.relative_to(ROOT)}: {broken}"


def test_the_tour_has_each_step() -> None:
    kinds = [lang for lang, _ in tour()]
    assert kinds.count("console") == 1 and kinds.count("sh") >= 2 and kinds.count("python") == 2


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    """Every command of the tour, in an empty folder; the outputs the README quotes are checked."""
    exe = shutil.which("uuid-forge", path=str(Path(sys.executable).parent)) or shutil.which("uuid-forge")
    assert exe, "uuid-forge is not installed: run the README's first command (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UUID_FORGE_")}
    env["PATH"] = f"{Path(exe).parent}{os.pathsep}{env.get('PATH', '')}"
    blocks = tour()

    console = next(body for lang, body in blocks if lang == "console")
    for command, expected in re.findall(r"^\$ (.+)\n([^$\n].*)$", console, re.MULTILINE):
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert (done.returncode, done.stdout.strip()) == (0, expected.strip()), (command, done.stderr)

    script = "\n".join(body for lang, body in blocks if lang == "sh")
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    out = done.stdout
    assert done.returncode == 0, (out, done.stderr)
    assert "id: 645c67f9-eab3-5fa4-9dd4-2b3542dc8dc7" in out, out  # the ID `generate` printed
    assert "INCONSISTENT" in out and "files: 1 missing, 1 stale" in out, out
    assert "rewrite 2 record(s) from db (1 missing, 1 stale, 0 malformed)" in out, out
    assert any(line.startswith("repaired: audit of user against db: 2 findings fixed") and "now consistent" in line
               for line in out.splitlines()), out
    deleted = [line.split("│")[1:5] for line in out.splitlines() if line.startswith("│ ")][-2:]  # the delete's table
    assert [[c.strip() for c in row] for row in deleted] == [["db", "source", "ok", "1"], ["files", "required", "ok", "1"]]

    env["UUID_FORGE_SALT"] = "v1"  # exported by the tour's shell, which the Python runs after
    for body in (body for lang, body in blocks if lang == "python"):
        done = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, (body, done.stderr)
        expected = re.findall(r"print\(.*\)\s+# (\S+)", body)
        assert done.stdout.split() == expected, (body, done.stdout)
