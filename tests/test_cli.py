"""The command line agrees with the library on every vector, and fails cleanly on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import scaffold
from .conftest import load_vectors
from .scaffold import run_cli

V1 = load_vectors("ids-v1.json")
LEGACY = load_vectors("ids-legacy-uuid-forge-0.1.json")
ENCODINGS = load_vectors("encodings.json")


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process through main(), which maps errors to exit codes."""
    return run_cli(args, env)


def cli_args(v: dict[str, Any]) -> list[str]:
    """The vector's typed inputs as CLI arguments: text stays text, everything else is ':=' JSON."""
    args = ["generate", v["entity_type"], "--namespace", v["namespace_domain"], "--salt", v["salt"]]
    for a in v["args"]:
        args.append(a if isinstance(a, str) and not a.startswith(":=") else ":=" + json.dumps(a))
    for k, val in v["kwargs"].items():
        args += ["-a", f"{k}={val}" if isinstance(val, str) else f"{k}:={json.dumps(val)}"]
    return args


@pytest.mark.parametrize("v", V1, ids=[v["label"] for v in V1])
def test_cli_generate_matches_every_v1_vector(v: dict[str, Any]) -> None:
    env = {"UUID_FORGE_SECRET": v["secret"]} if v["secret"] else {}
    code, out, err = run(cli_args(v), env)
    assert code == 0, err
    assert out.strip() == v["uuid"]


@pytest.mark.parametrize("v", LEGACY, ids=[v["label"] for v in LEGACY])
def test_cli_generate_matches_legacy_vectors(v: dict[str, Any]) -> None:
    code, out, err = run([*cli_args(v), "--scheme", "uuid-forge-0.1"])
    assert code == 0, err
    assert out.strip() == v["uuid"]


def test_typed_and_text_values_give_different_ids() -> None:
    _, as_int, _ = run(["generate", "invoice", "-a", "number:=12345"])
    _, as_text, _ = run(["generate", "invoice", "-a", "number=12345"])
    assert as_int != as_text


def test_flags_override_env_one_by_one() -> None:
    v = V1[0]
    code, out, _ = run(["generate", "user", "-a", "email=john@example.com", "--namespace", v["namespace_domain"]],
                       {"UUID_FORGE_SALT": "v1"})
    assert code == 0 and out.strip() == v["uuid"]  # 0.1.x dropped the env salt when --namespace was given


def test_generate_json_and_prefix() -> None:
    code, out, _ = run([*cli_args(V1[0]), "--prefix", "USR", "--json"])
    payload = json.loads(out)
    assert code == 0 and payload["id"] == V1[0]["uuid"] and payload["value"] == "USR-" + V1[0]["uuid"]
    assert "salt" not in out.replace('"keyed"', "")


@pytest.mark.parametrize("v", ENCODINGS, ids=[v["string"][:8] for v in ENCODINGS])
def test_decode_every_form_json(v: dict[str, Any]) -> None:
    for form in ("string", "hex", "base64url", "base32", "urn"):
        code, out, err = run(["decode", v[form], "--json"])
        assert code == 0, err
        got = json.loads(out)
        assert got["string"] == v["string"] and got["input_form"] == form
        assert got["base64url"] == v["base64url"] and got["base32"] == v["base32"]


def test_inspect_shows_version_and_variant() -> None:
    code, out, _ = run(["inspect", "ZFxn-eqzX6Sd1Cs1QtyNxw", "--json"])
    assert code == 0
    assert json.loads(out)["version"] == 5 and "RFC 9562" in json.loads(out)["variant"]  # a number, as generate --json


def test_encode_one_form() -> None:
    code, out, _ = run(["encode", "7570842a-fbec-40d3-ae25-3f1c2bda326b", "--to", "base32"])
    assert code == 0 and out.strip() == "3ne222nyzc839tw99z3gnxmckb"


@pytest.mark.parametrize("args,needle", [
    (["generate", "x", "-a", "n:=12x"], "not valid JSON"),
    (["generate", "x", "-a", "novalue"], "expected key=value"),
    (["generate", "x", "-a", "k=1", "-a", "k=2"], "given twice"),
    (["generate", "x", ":=NaN"], "not a finite number"),
    (["generate", "", "-a", "k=1"], "entity_type must not be empty"),
    (["decode", "not-a-uuid"], "not a UUID in any form"),
    (["decode", "3NE222NYZC839TW99Z3GNXMCKB"], "lowercase"),
    (["extract", "INV-nothing"], "no UUID found at the end of 'INV-nothing'"),
    (["new-salt", "--length", "4"], "at least 16"),
    (["generate", "x", "-a", "k=1", "--namespace", ""], "--namespace '': give a domain"),
    (["generate"], "Missing argument"),
    (["no-such-command"], "No such command"),
])
def test_bad_input_exits_2_with_one_line(args: list[str], needle: str) -> None:
    code, out, err = run(args)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err + out


def test_config_masks_salt_and_secret() -> None:
    code, out, _ = run(["config", "--json"], {"UUID_FORGE_SALT": "very-secret-salt-value",
                                              "UUID_FORGE_SECRET": "very-secret-key"})
    assert code == 0
    assert "very-secret" not in out
    assert json.loads(out)["keyed"] is True


def test_new_salt_is_random_and_long() -> None:
    a, b = run(["new-salt"])[1].strip(), run(["new-salt"])[1].strip()
    assert a != b and len(a) >= 40


def test_init_writes_0600_file_without_printing_salt(tmp_path: Any) -> None:
    target = tmp_path / "x.env"
    code, out, _ = run(["init", "-o", str(target)])
    assert code == 0
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    salt_line = next(ln for ln in target.read_text().splitlines() if ln.startswith("UUID_FORGE_SALT="))
    assert salt_line.split("=", 1)[1] not in out


def test_init_says_how_to_load_the_file_and_that_way_works(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """uuid-forge reads the salt from the environment only, so init prints a command that loads
    it; run by a POSIX shell in that folder, it does (". .env" without a slash would search PATH)."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["init"])
    assert code == 0 and (tmp_path / ".env").exists()
    command = out.split("e.g. ", 1)[1].split(" (or", 1)[0]
    done = subprocess.run(["sh", "-c", f'{command}; printf %s "${{UUID_FORGE_SALT:+loaded}}"'], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert done.stdout == "loaded", (command, done.stderr)


@pytest.mark.skipif(shutil.which("uuid-forge") is None, reason="console script not installed")
def test_console_script_matches_library_in_a_subprocess() -> None:
    v = V1[3]
    env = {k: v_ for k, v_ in os.environ.items() if not k.startswith("UUID_FORGE_")}
    done = subprocess.run(["uuid-forge", *cli_args(v)], capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == v["uuid"]
    bad = subprocess.run(["uuid-forge", "generate", "x", "-a", "n:=["], capture_output=True, text=True, env=env,
                         check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def _embedded_config(tmp_path: Any) -> str:
    """A config on embedded stores only, with relative paths (anchored to the file's folder)."""
    (tmp_path / "uuid-forge.toml").write_text(
        '[stores.db]\nurl = "sqlite:///db.sqlite3"\nrole = "source"\n\n'
        f'[stores.files]\nurl = "file://{tmp_path}/files"\noptions = {{ fsync = false }}\n\n'
        '[stores.cache]\nurl = "memory://"\noptional = true\n', encoding="utf-8")
    return str(tmp_path / "uuid-forge.toml")


def test_audit_of_an_entity_type_nothing_knows_is_an_error(tmp_path: Any) -> None:
    conf = _embedded_config(tmp_path)
    code, _, _ = run(["write", "-c", conf, "user", "-k", "email=a@example.com", "-d", "name=A"])
    assert code == 0
    code, out, err = run(["audit", "-c", conf, "--entity", "usr", "--json"])
    body = json.loads(out)
    assert code == 2 and body["did_you_mean"] == "user" and body["error"] == (
        "--entity 'usr': neither the configuration nor any store knows that entity type; did you mean "
        "'user'? (known: user)")
    code, out, err = run(["audit", "-c", conf, "--entity", "usr"])  # the suggestion on stdout too
    assert code == 2 and "did you mean 'user'?" in out and "Traceback" not in err
    code, out, err = run(["audit", "-c", conf, "--entity", "user", "--json"])
    # a known type is audited: 1, since the memory:// cache starts empty in each process
    assert code == 1 and json.loads(out)["warnings"] == [] and "warning" not in err


def test_audit_of_a_declared_type_with_no_records_is_fine(tmp_path: Any) -> None:
    conf = _embedded_config(tmp_path)
    with open(conf, "a", encoding="utf-8") as fh:
        fh.write('\n[types.invoice]\nkey = ["number"]\n')
    code, out, err = run(["audit", "-c", conf, "--entity", "invoice", "--json"])
    assert code == 0 and json.loads(out)["consistent"] is True, err


def test_memory_store_in_a_config_is_flagged(tmp_path: Any) -> None:
    code, _, err = run(["write", "-c", _embedded_config(tmp_path), "user", "-k", "email=a@example.com"])
    assert code == 0 and "store 'cache' is memory://" in err


def test_missing_jsonl_file_names_the_option(tmp_path: Any) -> None:
    conf = _embedded_config(tmp_path)
    code, _, err = run(["write", "-c", conf, "--jsonl", str(tmp_path / "nope.jsonl")])
    assert code == 2 and "--jsonl" in err and "no such file" in err and "Errno" not in err
    code, out, err = run(["audit", "-c", conf, "--entity", "user"])  # nothing was written anywhere
    assert code == 2 and "(the stores are empty and no [types.NAME] is declared)" in out


@scaffold.requires_driver("redis")
def test_audit_with_an_optional_store_down_audits_the_others_and_exits_2(tmp_path: Any) -> None:
    conf = _embedded_config(tmp_path)
    with open(conf, "a", encoding="utf-8") as fh:
        fh.write('\n[stores.redis]\nurl = "redis://u:hunter2@127.0.0.1:1/0"\noptional = true\n')
    run(["write", "-c", conf, "user", "-k", "email=a@example.com", "-d", "name=A"])
    metrics = tmp_path / "audit.prom"
    code, out, err = run(["audit", "-c", conf, "--json", "--metrics", str(metrics)])
    body = json.loads(out)
    assert code == 2, err
    assert set(body["not_audited"]) == {"redis"} and body["complete"] is False
    assert "files" in body["stores"] and "redis" not in body["stores"]  # the others were audited
    assert "hunter2" not in out and "***" in body["not_audited"]["redis"]
    assert body["summary"].startswith("INCOMPLETE: ") and "\n" not in body["summary"]
    text = metrics.read_text()
    assert 'uuid_forge_audit_store_audited{entity_type="*",partition="*",store="redis"} 0.0' in text
    assert 'uuid_forge_audit_exit_status{entity_type="*",partition="*"} 2.0' in text
    code, out, _ = run(["audit", "-c", conf], {"COLUMNS": "80"})
    assert code == 2 and "not audited redis" in out and "NOT AUDITED: redis" in out


def test_write_without_a_salt_warns_before_the_first_write(tmp_path: Path) -> None:
    """A later salt would change every ID: the write says so (a fresh-eyes run wrote unsalted IDs unwarned)."""
    conf = tmp_path / "uuid-forge.toml"
    conf.write_text(f'[stores.db]\nurl = "sqlite:///{tmp_path}/db.sqlite3"\nrole = "source"\n', encoding="utf-8")
    code, _, err = run(["write", "-c", str(conf), "user", "-k", "email=a@x.org", "-d", "n:=1"], env={})
    assert code == 0 and "written without a salt or secret" in err
    code, _, err = run(["write", "-c", str(conf), "other", "-k", "email=a@x.org"], env={"UUID_FORGE_SALT": "s" * 32})
    assert "written without a salt" not in err


@pytest.mark.parametrize("form", ["string", "hex", "base64url", "base32", "urn"])
@pytest.mark.parametrize("separator", ["-", "_", ":"])
def test_extract_reads_back_what_generate_prefix_printed(form: str, separator: str) -> None:
    """Every form ``generate --prefix`` writes, with a separator the base64url form may itself hold."""
    code, bare, err = run_cli(["generate", "invoice", "-a", "region=EUR", "-n", "orders"])
    assert code == 0, err
    for region in ("EUR", "EU-WEST_2"):
        code, prefixed, err = run_cli(["generate", "invoice", "-a", "region=EUR", "-n", "orders", "--prefix",
                                       f"INV{separator}{region}", "--separator", separator, "--form", form])
        assert code == 0, err
        code, out, err = run_cli(["extract", prefixed.strip(), "--separator", separator])
        assert (code, out.strip()) == (0, bare.strip()), (prefixed, err)


@pytest.mark.parametrize(("given", "said"), [([], "missing: email"),
                                             (["-a", "mail=john@example.com"], "not key fields: mail; missing: email"),
                                             (["john@example.com"], "1 positional value; missing: email"),
                                             (["-a", "email=j@x.org", "-a", "age:=3"], "not key fields: age")])
def test_generate_for_a_declared_type_takes_exactly_its_key_fields(tmp_path: Path, given: list[str],
                                                                   said: str) -> None:
    """Any other key gives an ID no writer stores (write refuses it too): refused, naming the fields."""
    config = scaffold.write_forge_toml(tmp_path / "uuid-forge.toml", {"db": f"sqlite:///{tmp_path / 'a.db'}"}, "db",
                                       namespace="users.myapp.com", extra='[types.user]\nkey = ["email"]')
    env = {"UUID_FORGE_SALT": "v1"}
    code, out, err = run_cli(["generate", "user", *given, "-c", str(config)], env)
    assert code == 2 and "declares key = ['email']" in err and said in err, err
    assert "john@example.com" not in err
    code, out, err = run_cli(["generate", "user", "-a", "email=john@example.com", "-c", str(config)], env)
    assert (code, out.strip()) == (0, "645c67f9-eab3-5fa4-9dd4-2b3542dc8dc7"), err  # the README's ID
    code, out, err = run_cli(["generate", "order", "-a", "n:=1", "-c", str(config)], env)
    assert code == 0, err  # an undeclared type takes any key, as in 0.1.x


@pytest.mark.parametrize(("argv", "where", "said"), [
    (["generate"], "uuid-forge generate", "Missing argument 'ENTITY_TYPE'"),
    (["generate", "--bogus", "x"], "uuid-forge generate", "No such option '--bogus'"),
    (["audit", "--apply", "-c", "/nonexistent.toml"], "uuid-forge audit", ""),
    (["demo", "--users", "0"], "uuid-forge demo", "--users must be at least 10"),
    (["nosuch"], "uuid-forge", "No such command 'nosuch'"),
])
def test_a_usage_error_is_one_line_naming_the_command_and_its_help(argv: list[str], where: str, said: str) -> None:
    code, out, err = run_cli(argv)
    assert code == 2 and out == "", out
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{where}: error: ") and said in err and err.rstrip().endswith(f"(see '{where} --help')"), err


@pytest.mark.parametrize(("secret", "warned"), [("\u00a4", True), ("k" * 31, True), ("k" * 32, False)])
def test_validate_warns_of_a_short_secret_without_showing_it(secret: str, warned: bool) -> None:
    env = {"UUID_FORGE_SALT": "a-salt-of-twenty-chars", "UUID_FORGE_SECRET": secret,
           "UUID_FORGE_NAMESPACE": "short-secret.example"}
    code, out, err = run_cli(["validate", "--offline", "--json"], env)
    checks = [c for c in json.loads(out)["checks"] if c["check"] == "secret"]
    assert bool(checks) == warned and code == 0, out + err
    assert secret not in out + err
    if warned:
        assert checks[0]["status"] == "warning" and f"only {len(secret)} character(s)" in checks[0]["message"]
        assert run_cli(["validate", "--offline", "--strict"], env)[0] == 1


def test_write_notes_a_store_where_the_entry_cannot_be_proven_ours(tmp_path: Path) -> None:
    """An undeclared type's file holds its data only: said at the first write, not found out at
    the first delete; a declared type stores its key fields and gets no note."""
    stores = {"db": f"sqlite:///{tmp_path / 'a.db'}", "files": f"file://{tmp_path / 'files'}"}
    env = {"UUID_FORGE_SALT": "v1"}
    plain = scaffold.write_forge_toml(tmp_path / "plain.toml", stores, "db", namespace="users.myapp.com")
    code, _, err = run_cli(["write", "-c", str(plain), "user", "-k", "email=john@example.com", "-d", "name=J"], env)
    assert code == 0 and "note: files keeps 'user' without its key fields" in err, err
    assert "[types.user] key = [...]" in err and "john@example.com" not in err
    declared = scaffold.write_forge_toml(tmp_path / "declared.toml", stores, "db", namespace="users.myapp.com",
                                         extra='[types.member]\nkey = ["email"]')
    code, _, err = run_cli(["write", "-c", str(declared), "member", "-k", "email=ann@example.com", "-d", "n=A"], env)
    assert code == 0 and "note:" not in err, err


@pytest.mark.parametrize("argv", [[], ["ids"], ["sql"]])
def test_a_group_without_a_command_prints_its_help_and_exits_0(argv: list[str]) -> None:
    code, out, err = run_cli(argv)
    assert code == 0 and err == "", err
    assert out.startswith(f"Usage: {' '.join(['uuid-forge', *argv])} [OPTIONS] COMMAND") and "Commands:" in out


@pytest.mark.parametrize(("env", "said"), [({"UUID_FORGE_SCHEME": "bogus"}, "env UUID_FORGE_SCHEME (scheme): unknown scheme"),
                                           ({"UUID_FORGE_SALT": "x\udcff"}, "env UUID_FORGE_SALT (salt): not valid text")])
def test_a_bad_id_value_without_a_config_file_names_where_it_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     env: dict[str, str], said: str) -> None:
    """The same words as with a file (tests/test_settings.py): one builder serves both."""
    monkeypatch.chdir(tmp_path)  # no ./uuid-forge.toml
    code, out, err = run_cli(["generate", "user", "-a", "email=a@b.c"], {**env, "UUID_FORGE_CONFIG": None})
    assert code == 2 and said in err and out == "", err
    assert "\udcff" not in err
