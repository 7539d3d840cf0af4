"""A scope's live source (kea / windows_dhcp) is validated like the rest of the inventory, with FILE:LINE."""

import pytest

from tasks.inventory.model import load_inventory
from tasks.inventory.yaml_source import InputError

HEAD = "name: t\nprovisioning: {certificate_suffix: contoso.com}\n"
HOSTS = "hosts:\n  - {name: A, address: 10.1.0.5, amt_version: '11.8'}\n"


def _problems(tmp_path, scopes: str) -> list[str]:
    f = tmp_path / "inv.yaml"
    f.write_text(HEAD + "dhcp_scopes:\n" + scopes + HOSTS)
    with pytest.raises(InputError) as exc:
        load_inventory(f)
    return [str(p) for p in exc.value.problems]


def test_bad_sources_point_at_their_line(tmp_path):
    probs = _problems(tmp_path, "  - name: hq\n    subnet: 10.1.0.0/16\n    kea:\n      url: 'http://kea;reboot/'\n")
    assert len(probs) == 1 and "inv.yaml:7" in probs[0] and "kea.url" in probs[0]
    probs = _problems(tmp_path, "  - name: hq\n    subnet: 10.1.0.0/16\n    kea: {url: 'http://u:p@kea1:8000/'}\n")
    assert "no credentials" in probs[0]
    probs = _problems(tmp_path, "  - name: hq\n    subnet: 10.1.0.0/16\n    domain_name: contoso.com\n"
                                "    kea: {url: 'http://kea1:8000/'}\n")
    assert "inv.yaml:4" in probs[0] and "drop domain_name" in probs[0]
    probs = _problems(tmp_path, "  - name: hq\n    subnet: 10.1.0.0/16\n    kea: {url: 'http://kea1:8000/'}\n"
                                "    windows_dhcp: {server: dhcp1.contoso.com}\n")
    assert "at most one of kea or windows_dhcp" in probs[0]
    probs = _problems(tmp_path, "  - name: hq\n    subnet: 10.1.0.0/16\n    windows_dhcp: {server: 'dhcp1 & calc'}\n")
    assert "windows_dhcp.server" in probs[0]
    probs = _problems(tmp_path, "  - name: hq\n    subnet: 10.1.0.0/16\n    windows_dhcp: {server: 10.0.0.5, scope_id: 10.9.0.0}\n")
    assert "not in subnet" in probs[0]


def test_good_sources_and_live_copy(tmp_path):
    from datetime import timedelta

    from tasks.adapters.dhcp import ScopeOptions

    f = tmp_path / "inv.yaml"
    f.write_text(HEAD + "dhcp_scopes:\n  - {name: hq, subnet: 10.1.0.0/16, kea: {url: 'http://kea1:8000/', subnet_id: 7}}\n"
                 "  - {name: br, subnet: 10.2.0.0/16, windows_dhcp: {server: dhcp1.contoso.com}}\n" + HOSTS)
    inv = load_inventory(f)
    hq, br = inv.dhcp_scopes
    assert hq.source_label == "Kea at http://kea1:8000/ (subnet 7)" and not hq.known
    assert br.source_label == "Windows DHCP on dhcp1.contoso.com (scope 10.2.0.0)"
    live = inv.with_live_scopes({"hq": ScopeOptions("contoso.com", timedelta(hours=1), "Kea at x")}, {"br": "down"})
    assert live.path == inv.path and live.certificate_suffix == "contoso.com"  # private state survives the copy
    assert live.dhcp_scopes[0].known and live.dhcp_scopes[0].domain_name == "contoso.com"
    assert live.dhcp_scopes[0].live_source == "Kea at x" and live.dhcp_scopes[1].live_error == "down"
    assert not inv.dhcp_scopes[0].known  # the original is untouched
