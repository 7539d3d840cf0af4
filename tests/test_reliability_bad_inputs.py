"""The bad-input corpus (tests/bad_inputs/): every command that reads it says clearly what is wrong,
exits 2 and writes no state, no report and no inventory.

Inventories carry their expectations as `# expect: LINE: FIELD: fragment` comments; each is copied into
a fresh folder so the default state path (state/<name>.db next to the inventory) can be checked.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from flows.cli import app
from tasks.store.state import SCHEMA_VERSION, StateStore

CORPUS = Path(__file__).parent / "bad_inputs"
INVENTORIES = sorted((CORPUS / "inventories").glob("*.yaml"))
runner = CliRunner()

GOOD_INVENTORY = {
    "name": "good",
    "provisioning": {"server": "lab", "url": "http://127.0.0.1:9", "certificate_suffix": "contoso.com"},
    "hosts": [{"name": "WS-1", "address": "10.0.0.1", "amt_version": "11.8.50"}],
    "waves": [{"name": "w", "hosts": ["*"]}],
}


def _expectations(path: Path) -> list[tuple[int, str, str]]:
    found = re.findall(r"^# expect: (\d+): ([^:]*): (.+)$", path.read_text(), re.M)
    assert found, f"{path.name} has no '# expect:' line"
    return [(int(line), field, frag) for line, field, frag in found]


def _nothing_written(folder: Path, before: set[Path]) -> None:
    after = {p for p in folder.rglob("*")}
    assert after == before, f"files written: {sorted(map(str, after - before))}"


def _invoke(args: list[str]):
    res = runner.invoke(app, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


COMMANDS = {
    "validate": lambda p: ["validate", str(p)],
    "plan": lambda p: ["plan", str(p)],
    "run": lambda p: ["run", str(p), "--wave", "w"],
    "status": lambda p: ["status", str(p)],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("src", INVENTORIES, ids=lambda p: p.stem)
def test_a_bad_inventory_is_refused_by_every_command_naming_file_line_field(src, command, tmp_path):
    inv = tmp_path / src.name
    shutil.copy(src, inv)
    before = set(tmp_path.rglob("*"))
    res = _invoke(COMMANDS[command](inv))
    assert res.exit_code == 2, res.output
    for line, field, frag in _expectations(inv):
        want = f"{inv}:{line}: {field + ': ' if field else ''}"
        hits = [ln for ln in res.stderr.splitlines() if want in ln and frag in ln]
        assert hits, f"expected {want!r} … {frag!r} in:\n{res.stderr}"
    assert "Traceback" not in res.output
    assert "hunter2" not in res.output  # an inline password is refused without being echoed
    _nothing_written(tmp_path, before)


def test_a_legacy_export_without_required_columns_is_refused_naming_them(tmp_path):
    out = tmp_path / "out" / "inv.yaml"
    res = _invoke(["import-legacy", str(CORPUS / "csv" / "missing_columns.csv"), "-o", str(out),
                   "--cert-suffix", "contoso.com"])
    assert res.exit_code == 2
    assert "missing_columns.csv:1: no column for required field 'address'" in res.stderr
    assert "no column for required field 'amt_version'" in res.stderr and "--map" in res.stderr
    assert not (tmp_path / "out").exists()


def test_a_legacy_export_with_bad_rows_names_every_row_and_writes_nothing(tmp_path):
    out = tmp_path / "out" / "inv.yaml"
    res = _invoke(["import-legacy", str(CORPUS / "csv" / "bad_rows.csv"), "-o", str(out),
                   "--cert-suffix", "contoso.com"])
    assert res.exit_code == 2
    err = res.stderr
    expected = [
        (2, "IP Address", "not a valid IPv4 address"),
        (3, "AMT Version", "not dotted integers"),
        (4, "Computer Name", "may hold only letters"),  # shell metacharacters in a name
        (5, "AMT Domain", "may hold only letters"),  # ... in a suffix
        (6, "IP Address", "neither an IP address nor a DNS name"),  # ... in an address
        (7, None, "neither Windows nor Linux"),
        (8, "Computer Name", "duplicate host name 'WS-0001' (first at line 2)"),
        (9, "IP Address", "duplicate address '10.1.0.21' (first at line 2)"),
    ]
    for row, column, frag in expected:
        prefix = f"bad_rows.csv:{row + 1}: row {row}" + (f": {column}" if column else "")
        assert any(prefix in ln and frag in ln for ln in err.splitlines()), f"{prefix} … {frag}\n{err}"
    assert "row 1:" not in err  # the good row is not blamed
    assert "8 bad row(s)" in err and "nothing written" in err
    assert not (tmp_path / "out").exists()


def test_a_legacy_export_that_does_not_exist_or_is_not_csv(tmp_path):
    out = tmp_path / "out" / "inv.yaml"
    res = _invoke(["import-legacy", str(tmp_path / "nope.csv"), "-o", str(out), "--cert-suffix", "contoso.com"])
    assert res.exit_code == 2 and "file not found" in res.stderr
    binary = tmp_path / "export.csv"
    binary.write_bytes(b"\x00\xff\xfe" * 100)
    res = _invoke(["import-legacy", str(binary), "-o", str(out), "--cert-suffix", "contoso.com"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def _good_inventory(folder: Path, **extra) -> Path:
    data = dict(GOOD_INVENTORY, **extra)
    path = folder / "good.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


BAD_URLS = {
    "unknown dialect": "nosuchdialect://host/db",
    "folder that cannot be made": "sqlite:////proc/amtmig-nope/state.db",
    "unreachable postgresql": "postgresql+psycopg://amt:TopSecretPw1@127.0.0.1:9/amt?connect_timeout=3",
}


@pytest.mark.parametrize("url", list(BAD_URLS.values()), ids=list(BAD_URLS))
def test_a_state_url_that_cannot_be_opened_is_exit_2_for_run_and_status(url, tmp_path):
    inv = _good_inventory(tmp_path)
    before = set(tmp_path.rglob("*"))
    for args in (["run", str(inv), "--wave", "w", "--state", url], ["status", "--state", url],
                 ["history", "WS-1", "--state", url]):
        res = _invoke(args)
        assert res.exit_code == 2, (args, res.output)
        assert "error:" in res.stderr and ("cannot open state" in res.stderr or "does not exist" in res.stderr), res.stderr
        assert "TopSecretPw1" not in res.output and "Traceback" not in res.output
    # the same URL in the inventory itself
    inv = _good_inventory(tmp_path, state=url)
    before = set(tmp_path.rglob("*"))
    res = _invoke(["run", str(inv), "--wave", "w"])
    assert res.exit_code == 2, res.output
    assert "TopSecretPw1" not in res.output
    _nothing_written(tmp_path, before)


def test_a_newer_state_schema_is_refused_by_run_and_nothing_is_written(tmp_path):
    inv = _good_inventory(tmp_path)
    db = tmp_path / "state" / "good.db"
    url = f"sqlite:///{db}"
    StateStore(url).close()
    engine = create_engine(url)
    with engine.begin() as con:
        con.execute(text("UPDATE amtmig_meta SET value=:v WHERE key='schema_version'"), {"v": str(SCHEMA_VERSION + 1)})
    engine.dispose()

    def snapshot():
        e = create_engine(url)
        with e.connect() as con:
            tables = sorted(r[0] for r in con.execute(text("SELECT name FROM sqlite_master WHERE type='table'")))
            rows = {t: con.execute(text(f"SELECT * FROM {t}")).fetchall() for t in tables}
        e.dispose()
        return rows

    before = snapshot()
    for args in (["run", str(inv), "--wave", "w"], ["rerun", str(inv), "--wave", "w", "--status", "failed"],
                 ["status", str(inv)], ["status", "--state", url]):
        res = _invoke(args)
        assert res.exit_code == 2, (args, res.output)
        assert f"schema version {SCHEMA_VERSION + 1}, newer" in res.stderr, res.stderr
    assert snapshot() == before
    assert not (tmp_path / "state" / "reports").exists()


def test_status_of_a_state_that_does_not_exist_creates_nothing(tmp_path):
    inv = _good_inventory(tmp_path)
    before = set(tmp_path.rglob("*"))
    res = _invoke(["status", str(inv)])
    assert res.exit_code == 2 and "does not exist" in res.stderr
    res = _invoke(["status", "--state", f"sqlite:///{tmp_path}/other/x.db"])
    assert res.exit_code == 2
    _nothing_written(tmp_path, before)


def test_an_unknown_wave_is_exit_2_before_anything_is_written(tmp_path):
    inv = _good_inventory(tmp_path)
    before = set(tmp_path.rglob("*"))
    res = _invoke(["run", str(inv), "--wave", "nope"])
    assert res.exit_code == 2 and "nope" in res.stderr
    _nothing_written(tmp_path, before)
