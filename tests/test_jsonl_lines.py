"""JSONL lines are read strictly (issue 18, "One rule for values"): a member repeated in one object
is refused with its file, line and name (never its value), and a line nested past the documented
depth is refused with its line, never as a RecursionError. Nothing is written from a file that
holds such a line; on standard input, what came before it is written, as for any bad line.

Fast: SQLite source and file store through the CLI in-process (integration/test_cli_forge.py
does the same against PostgreSQL and Redis).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from uuid_forge.backfill import write_chunk
from uuid_forge.canonical import MAX_DEPTH
from uuid_forge.errors import ValidationError
from uuid_forge.jsonline import LINE_DEPTH, parse_line

from .scaffold import make_forge, run_cli, write_forge_toml

SECRET_VALUE = "s3cret-value-never-shown"


def config(tmp_path: Path) -> str:
    return str(write_forge_toml(tmp_path / "uuid-forge.toml",
                                {"db": "sqlite:///db.sqlite3",
                                 "files": {"url": f"file://{tmp_path}/files", "options": {"fsync": False}}},
                                "db", journal=f"{tmp_path}/j/journal.sqlite3"))


def good(n: int) -> str:
    return json.dumps({"entity_type": "user", "key": {"n": n}, "data": {}})


def one_error(err: str) -> str:
    assert "Traceback" not in err and "RecursionError" not in err and "unexpected" not in err
    errors = [line for line in err.splitlines() if line.startswith("uuid-forge: ")]
    assert len(errors) == 1, err
    return errors[0]


def nothing_written(conf: str, tmp_path: Path) -> None:
    code, out, _ = run_cli(["audit", "-c", conf, "--json"])
    stores = json.loads(out)["stores"]
    assert code == 0 and set(stores) == {"files"}, out  # the source is what it is compared with
    assert all(n == 0 for counts in stores.values() for n in counts.values() if isinstance(n, int)), out
    assert not list((tmp_path / "files").rglob("*.json"))


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` lists, one inside the other (depth 0: the leaf)."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


DUPLICATES = {
    "in data, nested": '{"entity_type": "user", "key": {"n": 1}, "data": {"address": '
                       '{"city": "Oslo", "city": "' + SECRET_VALUE + '"}}}',
    "in the key": '{"entity_type": "user", "key": {"n": 1, "n": 2}, "data": {}}',
    "at the top": '{"entity_type": "user", "key": {"n": 1}, "entity_type": "admin"}',
    "in a list": '{"entity_type": "user", "key": {"n": 1}, "data": {"tags": [{"t": 1, "t": 2}]}}',
}
NAMES = {"in data, nested": "city", "in the key": "n", "at the top": "entity_type", "in a list": "t"}


@pytest.mark.parametrize("case", list(DUPLICATES))
def test_cli_jsonl_duplicate_member_names_file_line_and_member(tmp_path: Path, case: str) -> None:
    conf = config(tmp_path)
    data = tmp_path / "in.jsonl"
    data.write_text(good(0) + "\n" + good(1) + "\n" + DUPLICATES[case] + "\n" + good(3) + "\n")
    code, out, err = run_cli(["write", "-c", conf, "--jsonl", str(data)])
    line = one_error(err)
    assert code == 2 and f"{data} line 3: member \"{NAMES[case]}\" appears twice" in line, line
    assert SECRET_VALUE not in out + err and "Oslo" not in out + err
    nothing_written(conf, tmp_path)  # the file is checked whole before any store is touched


def test_cli_jsonl_duplicate_member_on_stdin_after_good_lines(tmp_path: Path) -> None:
    conf = config(tmp_path)
    stdin = good(0) + "\n" + good(1) + "\n" + DUPLICATES["in data, nested"] + "\n" + good(3) + "\n"
    code, out, err = run_cli(["write", "-c", conf, "--jsonl", "-", "--json"], stdin=stdin)
    line = one_error(err)
    assert code == 2 and '<stdin> line 3: member "city" appears twice' in line
    assert "2 entities before it were written, nothing after it" in line and SECRET_VALUE not in out + err
    code, out, _ = run_cli(["audit", "-c", conf, "--json"])
    assert code == 0 and json.loads(out)["stores"]["files"]["ok"] == 2


def test_cli_jsonl_nesting_10000_levels_names_the_line(tmp_path: Path) -> None:
    conf = config(tmp_path)
    data = tmp_path / "deep.jsonl"
    deep = '{"entity_type": "user", "key": {"n": 1}, "data": {"v": ' + "[" * 10_000 + "]" * 10_000 + "}}"
    data.write_text(good(0) + "\n" + deep + "\n")
    code, _, err = run_cli(["write", "-c", conf, "--jsonl", str(data)])
    assert code == 2 and f"{data} line 2: nesting deeper than {MAX_DEPTH} levels" in one_error(err)
    nothing_written(conf, tmp_path)
    code, _, err = run_cli(["write", "-c", conf, "--jsonl", "-"], stdin=good(0) + "\n" + deep + "\n")
    assert code == 2 and f"<stdin> line 2: nesting deeper than {MAX_DEPTH} levels" in one_error(err)


@pytest.mark.parametrize("where", ["data", "key"])
def test_cli_jsonl_nesting_limit_is_the_canonical_forms(tmp_path: Path, where: str) -> None:
    """A value nested as deep as the canonical form accepts is written; one level more is refused
    with its line, whether the line parser or the canonical form sees it first."""
    conf = config(tmp_path)

    def line(depth: int) -> str:
        value = {"v": nested(depth)}  # the mapping is a container too: depth + 1 levels
        return json.dumps({"entity_type": "user", "key": {"n": 1}, "data": {}} | {where: value})

    data = tmp_path / "limit.jsonl"
    for depth in (MAX_DEPTH + 1, MAX_DEPTH + 5, 500):
        data.write_text(good(0) + "\n" + line(depth) + "\n")
        code, _, err = run_cli(["write", "-c", conf, "--jsonl", str(data)])
        assert code == 2 and f"{data} line 2: nesting deeper than {MAX_DEPTH} levels" in one_error(err), depth
    nothing_written(conf, tmp_path)
    data.write_text(good(0) + "\n" + line(MAX_DEPTH) + "\n")
    code, _, err = run_cli(["write", "-c", conf, "--jsonl", str(data)])
    assert code == 0, err


def test_parse_line_limits() -> None:
    assert parse_line(json.dumps(nested(LINE_DEPTH))) == nested(LINE_DEPTH)
    assert parse_line('{"a": "[[[[' + "[" * LINE_DEPTH + '", "b": {"a": 1}}') == {"a": "[[[[" + "[" * LINE_DEPTH,
                                                                                    "b": {"a": 1}}
    with pytest.raises(ValidationError, match="nesting deeper"):
        parse_line(json.dumps(nested(LINE_DEPTH + 1)))
    with pytest.raises(ValidationError, match='member "x" appears twice'):
        parse_line('[{"x": 1}, {"y": {"x": 1, "x": 1}}]')


def test_backfill_chunk_refuses_a_duplicate_member(tmp_path: Path) -> None:
    """A chunk worker reads the file again (it may have changed since it was checked): it too
    refuses a repeated member instead of writing the last one."""
    data = tmp_path / "in.jsonl"
    data.write_text(good(0) + "\n" + DUPLICATES["in data, nested"] + "\n")
    forge = make_forge(tmp_path, "memory://")
    try:
        with pytest.raises(ValidationError, match='bytes 0-[0-9]+: member "city" appears twice') as info:
            write_chunk(forge, str(data), 0, data.stat().st_size)
        assert SECRET_VALUE not in str(info.value)
        assert forge.stores[0].adapter.count("user") == 0
    finally:
        forge.close()
