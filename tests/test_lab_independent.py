"""The lab is an independent judge: it imports nothing from the product, and its rule is right on its own.

Three layers:
- no module under lab/ imports ``tasks`` or ``flows`` (checked on the source, so lazy imports inside
  functions count too, and by importing the whole lab in a fresh interpreter);
- the lab's own suffix rule (lab.amt_rules) against the seed's examples;
- the lab and the product agree on a table of cases whose expected outcome is written here from the
  seed: each side is held to the table, so a wrong rule on either side fails, and a rule both got wrong
  in the same way still fails.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from lab.amt_rules import (
    BLANK,
    FIRMWARE_TOO_OLD,
    MISMATCH,
    Firmware,
    InvalidName,
    check_provisioning,
    dns_name,
    firmware_accepts,
    seconds,
)
from lab.clock import ManualClock
from lab.model import Fleet

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "lab"
PRODUCT = {"tasks", "flows"}


# ------------------------------------------------------------------- no product imports

def product_imports(source: str, filename: str = "<src>") -> list[str]:
    """Every import in ``source`` (at any depth) that names a product package, as 'line: text'."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names = [node.module]
            else:  # relative: `from .. import tasks` would climb out of lab/
                names = [a.name for a in node.names] + ([node.module] if node.module else [])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            fn = node.func
            called = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if called in ("import_module", "__import__"):
                names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] in PRODUCT:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_import_scanner_sees_every_form():
    src = (
        "import os\nimport tasks\nimport flows.cli as c\nfrom tasks.rules.suffix import check_suffix\n"
        "def f():\n    from flows import cli\n    class K:\n        def g(self):\n            import tasks.rules\n"
        "import importlib\nimportlib.import_module('tasks.rules.suffix')\n__import__('flows')\n"
        "from lab.model import Fleet\nimport taskset\nfrom . import flowsheet\n"
    )
    hits = product_imports(src)
    assert sorted(int(h.split(":")[0]) for h in hits) == [2, 3, 4, 6, 9, 11, 12], hits


def test_no_module_under_lab_imports_the_product():
    files = sorted(LAB.rglob("*.py"))
    assert LAB / "model.py" in files and LAB / "amt_rules.py" in files
    offenders = {str(f.relative_to(ROOT)): hits for f in files
                 if (hits := product_imports(f.read_text(encoding="utf-8"), str(f)))}
    assert offenders == {}


def test_importing_the_whole_lab_loads_no_product_module():
    code = (
        "import pkgutil, sys, importlib, lab\n"
        "for m in pkgutil.walk_packages(lab.__path__, 'lab.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('tasks', 'flows'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------ the lab's own rule

@pytest.mark.parametrize("fw,amt,cert,refused", [
    # the seed: 3.2.1+ compares the last two labels - they "just need to share the namespace"
    ("3.2.1", "sales.contoso.com", "marketing.contoso.com", None),
    ("11.8.50", "sales.contoso.com", "marketing.northwindtraders.com", MISMATCH),
    # a blank suffix never matches
    ("11.8.50", "", "contoso.com", BLANK),
    ("11.8.50", None, "contoso.com", BLANK),
    ("11.8.50", "   ", "contoso.com", BLANK),
    # case, a trailing dot and surrounding whitespace are not part of the name
    ("3.2.1", " Sales.CONTOSO.com. ", "Marketing.Contoso.COM.", None),
    # only the last two labels, however deep; no partial-label or TLD-only matches
    ("11.8.50.3425", "a.b.sales.contoso.com", "contoso.com", None),
    ("11.8.50", "contoso.com.au", "contoso.com", MISMATCH),
    ("11.8.50", "contoso", "contoso.com", MISMATCH),
    ("11.8.50", "fabrikam.com", "contoso.com", MISMATCH),
    # firmware before 3.2.1 is refused by the server whatever its comparison says
    ("3.2.0", "contoso.com", "contoso.com", FIRMWARE_TOO_OLD),
    ("2.6.3", "", "contoso.com", FIRMWARE_TOO_OLD),
    # versions compare as numbers, not text
    ("3.10", "sales.contoso.com", "contoso.com", None),
    ("10.0.0", "sales.contoso.com", "contoso.com", None),
])
def test_lab_rule_on_the_seed_examples(fw, amt, cert, refused):
    v = check_provisioning(fw, amt, cert)
    assert v.refused == refused
    assert v.accepted is (refused is None)


@pytest.mark.parametrize("fw,amt,cert,accepts", [
    # earlier firmware compares the whole suffix (what AMT itself does, before the server's floor)
    ("3.2.0", "contoso.com", "contoso.com", True),
    ("2.6.3", "Sales.Contoso.COM.", "sales.contoso.com", True),
    ("2.6.3", "sales.contoso.com", "marketing.contoso.com", False),   # matches from 3.2.1 on
    ("3.2.1", "sales.contoso.com", "marketing.contoso.com", True),
    ("2.6.3", "sales.contoso.com", "contoso.com", False),
    ("2.6.3", "", "contoso.com", False),
])
def test_firmware_comparison_whole_suffix_before_3_2_1(fw, amt, cert, accepts):
    assert firmware_accepts(fw, amt, cert) is accepts
    v = check_provisioning(fw, amt, cert)
    assert v.firmware_match is accepts
    assert v.compared == ("last-two-labels" if Firmware.parse(fw) >= Firmware.parse("3.2.1") else "whole-suffix")


def test_firmware_versions_and_names_and_durations():
    assert Firmware.parse("3.2.1") == Firmware.parse("3.2.1.0") < Firmware.parse("3.10") < Firmware.parse(11)
    assert not Firmware.parse("3.2.0.999").compares_last_two_labels and Firmware.parse("3.2.1").compares_last_two_labels
    assert str(Firmware.parse(" 11.8.50 ")) == "11.8.50"
    for bad in ("11.x", "", "1..2", True, None):
        with pytest.raises(InvalidName):
            Firmware.parse(bad)
    assert dns_name(" Contoso.COM. ") == "contoso.com" and dns_name("") == "" and dns_name(None) == ""
    for bad in ("contoso..com", "-x.com", "a b.com", "x;rm -rf /.com", "a" * 64 + ".com"):
        with pytest.raises(InvalidName):
            dns_name(bad)
    with pytest.raises(InvalidName):
        dns_name("", blank_ok=False)
    assert [seconds(v) for v in ("24h", "90s", "6h30m", "50ms", 90, 1.5, "1w")] == [86400, 90, 23400, 0.05, 90, 1.5, 604800]
    for bad in ("24", "h", "6h 30x", -1, True, "1h-"):
        with pytest.raises(ValueError):
            seconds(bad)


# -------------------------------------------------- the lab and the product agree (end to end)

#: (firmware, suffix AMT holds, certificate suffix, expected) - expected written from the seed:
#: "ok" provisions, "blank"/"mismatch" fail on the suffix, "old" is firmware the server does not support.
AGREEMENT = [
    ("3.2.1", "sales.contoso.com", "marketing.contoso.com", "ok"),
    ("11.8.50", "sales.contoso.com", "marketing.northwindtraders.com", "mismatch"),
    ("11.8.50", "", "contoso.com", "blank"),
    ("3.2.1", "Sales.CONTOSO.com.", "marketing.contoso.com", "ok"),
    ("11.8.50.3425", "a.b.sales.contoso.com", "contoso.com", "ok"),
    ("11.8.50", "northwindtraders.com", "marketing.northwindtraders.com", "ok"),
    ("11.8.50", "contoso.com.au", "contoso.com", "mismatch"),
    ("3.2.1", "contoso", "contoso.com", "mismatch"),
    ("11.8.50", "contoso.local", "contoso.com", "mismatch"),
    ("3.10", "sales.contoso.com", "contoso.com", "ok"),
    ("3.2.0", "contoso.com", "contoso.com", "old"),
    ("2.6.3", "", "contoso.com", "old"),
    ("2.6.3", "sales.contoso.com", "marketing.contoso.com", "old"),
]

LAB_REFUSAL = {"ok": None, "blank": BLANK, "mismatch": MISMATCH, "old": FIRMWARE_TOO_OLD}
#: the product's plan (outcome, cause) for each expected result
PRODUCT_PLAN = {"ok": ("provision", None), "blank": ("fail", "suffix_blank"),
                "mismatch": ("fail", "suffix_mismatch"), "old": ("unsupported", "unsupported_version")}


def _lab_attempt(fw: str, amt: str, cert: str) -> dict:
    """Provision one device in a lab fleet (the judge's model, no sockets) and return the admin record."""
    fleet = Fleet.from_dict({
        "certificate_suffix": cert,
        "scopes": [{"name": "s", "subnet": "127.0.0.0/8", "domain_name": "", "lease": "1h"}],
        "devices": [{"name": "D1", "address": "127.0.0.9", "amt_version": fw, "state": "pre",
                     "trusted_suffix": amt}],
    }, clock=ManualClock())
    return fleet.provision("D1")


def _product_plan(tmp_path: Path, fw: str, amt: str, cert: str):
    from tasks.inventory.model import load_inventory
    from tasks.rules.plan import build_plan

    f = tmp_path / "inv.yaml"
    f.write_text(
        f"name: t\nprovisioning: {{certificate_suffix: '{cert}'}}\n"
        "credentials:\n  ssh: {user: m, key_env: K}\n  legacy_amt: {user: admin, password_env: P}\n"
        f"hosts:\n  - {{name: D1, address: 10.0.0.1, amt_version: '{fw}', amt_suffix: '{amt}'}}\n"
        "waves: [{name: w, hosts: ['*']}]\n"
    )
    return build_plan(load_inventory(f)).hosts[0]


@pytest.mark.parametrize("fw,amt,cert,expected", AGREEMENT)
def test_lab_and_product_agree_with_the_seed(tmp_path, fw, amt, cert, expected):
    from tasks.rules.suffix import check_suffix

    # the lab, as the rule and as the fleet a wave runs against
    lab = check_provisioning(fw, amt, cert)
    attempt = _lab_attempt(fw, amt, cert)
    lab_says = (lab.refused, attempt["result"])
    # the product, as the rule and as the plan it shows before a wave
    product = check_suffix(fw, amt, cert)
    plan = _product_plan(tmp_path, fw, amt, cert)
    product_says = (product.match, (plan.outcome, plan.cause))

    want_lab = (LAB_REFUSAL[expected], "success" if expected == "ok" else "failed")
    want_product = (expected == "ok", PRODUCT_PLAN[expected])
    assert (lab_says, product_says) == (want_lab, want_product), (
        f"{fw} {amt!r} vs {cert!r}: seed says {expected}; lab: {lab.explanation}; product: {product.reason}")
    # the admin API's true cause names the same thing the product's plan predicts
    assert attempt.get("true_reason") == (None if expected == "ok" else PRODUCT_PLAN[expected][1])
