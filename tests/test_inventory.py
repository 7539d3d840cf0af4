"""Inventory loading: the example is valid, and every broken inventory names its file, line and field."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.inventory.model import load_inventory
from tasks.inventory.yaml_source import InputError

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).parent / "bad_inventories"
runner = CliRunner()


def _expectations(path: Path):
    text = path.read_text()
    exp = re.search(r"^# expect: (\d+): ([^:]*): (.+)$", text, re.M)
    efile = re.search(r"^# expect-file: (.+)$", text, re.M)
    return int(exp.group(1)), exp.group(2), exp.group(3), (efile.group(1) if efile else path.name)


def test_example_inventory_is_valid_and_covers_every_verdict():
    inv = load_inventory(ROOT / "inventories" / "example.yaml")
    assert len(inv.hosts) >= 30
    from tasks.rules.plan import build_plan

    outcomes = {h.outcome for h in build_plan(inv).hosts}
    causes = {h.cause for h in build_plan(inv).hosts}
    assert {"provision", "fail", "unsupported", "unknown", "likely_fail", "likely_provision"} <= outcomes
    assert {"suffix_mismatch", "suffix_blank", "unsupported_version"} <= causes


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_inventory_names_file_line_and_field(path):
    line, field, message, fname = _expectations(path)
    with pytest.raises(InputError) as exc:
        load_inventory(path)
    printed = [str(p) for p in exc.value.problems]
    want = f"{fname}:{line}: {field + ': ' if field else ''}"
    assert any(want in p and message in p for p in printed), printed
    # and the CLI says the same on stderr with exit 2
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert want in result.stderr and message in result.stderr


def test_a_broken_inventory_lists_all_its_problems_at_once(tmp_path):
    f = tmp_path / "inv.yaml"
    f.write_text(
        "name: x\nprovisioning: {certificate_suffix: contoso.com}\nhosts:\n"
        "  - {name: A, address: 10.0.0.1, amt_version: bad}\n"
        "  - {name: B, address: 10.0.0.300, amt_version: '11.8'}\n"
    )
    with pytest.raises(InputError) as exc:
        load_inventory(f)
    lines = sorted(p.line for p in exc.value.problems)
    assert lines == [4, 5]


def test_values_are_normalised(tmp_path):
    f = tmp_path / "inv.yaml"
    f.write_text(
        "name: x\nprovisioning: {certificate_suffix: ' Contoso.COM. '}\nhosts:\n"
        "  - {name: WS-1, address: ' 10.0.0.1 ', amt_version: 11.8, amt_suffix: 'Sales.Contoso.com.', os_suffix: ''}\n"
        "waves: [{name: w, hosts: ['ws-*']}]\n"
    )
    inv = load_inventory(f)
    h = inv.hosts[0]
    assert inv.certificate_suffix == "contoso.com"
    assert (h.address, h.amt_version, h.amt_suffix, h.os_suffix) == ("10.0.0.1", "11.8", "sales.contoso.com", "")
    assert [x.name for x in inv.wave_hosts("w")] == ["WS-1"]  # globs ignore case


def test_includes_merge_hosts_and_resolve_relative_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.yaml").write_text("hosts:\n  - {name: B, address: 10.0.0.2, amt_version: '11.8'}\n")
    f = tmp_path / "inv.yaml"
    f.write_text("name: x\ninclude: sub/more.yaml\nprovisioning: {certificate_suffix: contoso.com}\n"
                 "hosts:\n  - {name: A, address: 10.0.0.1, amt_version: '11.8'}\n")
    assert [h.name for h in load_inventory(f).hosts] == ["A", "B"]


def test_certificate_file_gives_the_suffix(tmp_path):
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "amtprov.Contoso.com")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "prov.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    f = tmp_path / "inv.yaml"
    f.write_text("name: x\nprovisioning: {certificate: prov.pem}\nhosts:\n  - {name: A, address: 10.0.0.1, amt_version: '11.8'}\n")
    assert load_inventory(f).certificate_suffix == "contoso.com"


def test_state_path_is_relative_to_the_inventory(tmp_path):
    f = tmp_path / "inv.yaml"
    f.write_text("name: x\nprovisioning: {certificate_suffix: contoso.com}\nhosts:\n  - {name: A, address: 10.0.0.1, amt_version: '11.8'}\n")
    assert load_inventory(f).state_url == f"sqlite:///{tmp_path}/state/x.db"


def test_validate_cli_accepts_the_example():
    result = runner.invoke(app, ["validate", str(ROOT / "inventories" / "example.yaml")])
    assert result.exit_code == 0, result.output
    assert "37 hosts" in result.stdout


def test_amt_tls_hosts_need_a_ca_bundle_and_use_16993(tmp_path):
    from tasks.inventory.model import load_inventory as load
    from tasks.inventory.yaml_source import InputError as Bad

    base = ("name: t\nprovisioning: {certificate_suffix: contoso.com}\n"
            "credentials:\n  legacy_amt: {user: admin, password_env: P%s}\n"
            "hosts:\n  - {name: A, address: 10.0.0.1, amt_version: '11.8', amt_tls: true}\n"
            "  - {name: B, address: 10.0.0.2, amt_version: '11.8'}\n")
    f = tmp_path / "inv.yaml"
    f.write_text(base % "")
    with pytest.raises(Bad) as info:
        load(f)
    assert "ca_bundle" in str(info.value) and "inv.yaml:6" in str(info.value)
    (tmp_path / "ca.pem").write_text("x")
    f.write_text(base % ", ca_bundle: ca.pem")
    inv = load(f)
    a, b = inv.hosts
    assert (inv.amt_port_of(a), inv.amt_port_of(b)) == (16993, 16992)
    f.write_text(base % ", ca_bundle: nope.pem")
    with pytest.raises(Bad, match="nope.pem: no such file"):
        load(f)


def test_schema_and_cross_check_problems_come_in_one_pass_with_nothing_invented(tmp_path):
    """A lead fixes a broken inventory in one edit: schema errors don't hide the duplicate address, the
    unknown scope, the selector matching nothing or the host in two waves; the host set aside for its bad
    version does not make the selector naming it "match no host"; an unknown key says the nearest one."""
    src = ROOT / "tests" / "bad_inputs" / "inventories" / "schema_and_cross_checks.yaml"
    with pytest.raises(InputError) as exc:
        load_inventory(src)
    got = [(p.line, p.field) for p in exc.value.problems]
    assert got == [(14, "dhcp_scopes[0].leese"), (18, "hosts[0].amt_version"), (21, "hosts[1].amt_sufix"),
                   (25, "hosts[2].address"), (29, "hosts[3].scope"), (32, "waves[0].hosts[2]"),
                   (33, "waves[0].max_concurency"), (35, "waves[1].hosts")]
    dup = next(p for p in exc.value.problems if p.field == "hosts[2].address")
    assert dup.message.endswith(f"(first at {src}:20)")  # indices and lines of the original file, not the salvaged one
    result = runner.invoke(app, ["validate", str(src)])
    assert result.exit_code == 2 and "8 error(s)" in result.stderr
    assert f"{src}:21: hosts[1].amt_sufix: unknown key; did you mean amt_suffix?" in result.stderr


@pytest.mark.parametrize("text, want", [
    ("nmae: x\n", "nmae: unknown key; did you mean name?"),
    ("credentials:\n  legacy_amt: {user: a, pasword_env: X}\n", "credentials.legacy_amt.pasword_env: unknown key; "
                                                                 "did you mean password_env?"),
    ("defaults: {ssh_prot: 22}\n", "defaults.ssh_prot: unknown key; did you mean ssh_port?"),
    ("colour: blue\n", "colour: unknown key\n"),  # nothing near: no guess
])
def test_an_unknown_key_names_the_nearest_valid_one(tmp_path, text, want):
    f = tmp_path / "inv.yaml"
    f.write_text(("name: x\n" if not text.startswith("nmae") else "") + text +
                 "provisioning: {certificate_suffix: contoso.com}\n"
                 "hosts:\n  - {name: A, address: 10.0.0.1, amt_version: '11.8'}\n")
    result = runner.invoke(app, ["validate", str(f)])
    assert result.exit_code == 2
    assert want in result.stderr + "\n", result.stderr


def test_a_broken_host_list_stops_at_the_schema_problems(tmp_path):
    """Nothing left to cross-check (no usable hosts): the schema problems alone, no invented ones."""
    f = tmp_path / "inv.yaml"
    f.write_text("name: x\nprovisioning: {certificate_suffix: contoso.com}\n"
                 "hosts:\n  - {name: A, address: 10.0.0.1, amt_version: bad}\nwaves: [{name: w, hosts: [A, B]}]\n")
    with pytest.raises(InputError) as exc:
        load_inventory(f)
    assert [(p.line, p.field) for p in exc.value.problems] == [(4, "hosts[0].amt_version")]
