"""Host keys against the lab's own SSH listener: an unknown key and a changed key are refused per host,
recorded as such by discovery, and nothing runs on the refused hosts (remediation included).

tests/test_openssh_front.py covers the same refusal behind a real sshd with one key for every host;
here each device has its own key, so one host's bad entry must not affect its neighbours.
"""

from __future__ import annotations

from tasks.steps.discover import discover_host
from tasks.inventory.model import load_inventory
from tasks.steps.remediate import remediate_host
from tasks.store.state import StateStore
from tasks.steps.context import build_context
from tests.site_fixtures import device, start_site

DEVS = [
    device("KEY-OK", "127.10.7.1", dhcp="fabrikam.com"),
    device("KEY-GONE", "127.10.7.2", dhcp="fabrikam.com"),
    device("KEY-SWAPPED", "127.10.7.3", dhcp="fabrikam.com", os="linux"),
]


def test_unknown_and_changed_host_keys_are_refused_per_host(tmp_path, monkeypatch):
    site = start_site(tmp_path, DEVS, [{"name": "w", "hosts": ["*"], "remediation": ["dhcp_renew", "mebx"]}],
                      monkeypatch)
    try:
        kh = site.lab.known_hosts_path
        lines = kh.read_text().splitlines()
        by_addr = {line.split()[0].split("]")[0].lstrip("["): line for line in lines}
        other_key = by_addr["127.10.7.1"].split(None, 1)[1]  # KEY-OK's (valid, but not KEY-SWAPPED's) key
        kept = [line for line in lines if not line.startswith("[127.10.7.2]") and not line.startswith("[127.10.7.3]")]
        swapped = by_addr["127.10.7.3"].split()[0] + " " + other_key
        kh.write_text("\n".join(kept + [swapped]) + "\n")

        inv = load_inventory(site.inventory)
        store = StateStore(inv.state_url)
        store.ensure_hosts("w", [(h.name, h.address) for h in inv.wave_hosts("w")])
        ctx = build_context(inv, "w", store)  # reads known_hosts now, like a new run
        ctx.renew_verify_delay = 0.05
        for d in DEVS:
            discover_host(ctx, d["name"])
        ev = {d["name"]: store.get("w", d["name"]).evidence for d in DEVS}
        assert ev["KEY-OK"].get("ssh_error") is None and ev["KEY-OK"]["os_suffix"] == "contoso.com"
        assert (ev["KEY-GONE"]["ssh_error"], ev["KEY-GONE"]["ssh_cause"]) == ("host_key_unknown", "auth_failed")
        assert (ev["KEY-SWAPPED"]["ssh_error"], ev["KEY-SWAPPED"]["ssh_cause"]) == ("host_key_changed", "auth_failed")
        # the history says so too (what `amt-migrate history` shows)
        last = {d["name"]: [e for e in store.history([d["name"]], "w") if e.stage == "discovery"][-1] for d in DEVS}
        assert last["KEY-SWAPPED"].evidence["ssh_error"] == "host_key_changed"

        # pass 1 can't tell the suffix of a host it couldn't read: auth_failed, pointing at trust-hosts,
        # which keeps it out of remediation; nothing was ever run on the refused devices
        from tasks.steps.provision import provision_host

        for name in ("KEY-GONE", "KEY-SWAPPED"):
            assert provision_host(ctx, name, 1).label == "failed:auth_failed"
            rec = store.get("w", name)
            assert (rec.status, rec.cause) == ("failed", "auth_failed")
            assert "trust-hosts" in rec.next_step
            assert site.admin(name)["renews"] == [] and site.admin(name)["os_suffix"] == "contoso.com"
        # auth_failed is not remediated: fixing the key is the operator's step (trust-hosts), not the tool's
        assert remediate_host(ctx, "KEY-SWAPPED").result == "skipped"
        assert store.get("w", "KEY-SWAPPED").status == "failed"
        assert site.admin("KEY-SWAPPED")["renews"] == []
        # the known_hosts file was not "fixed" behind the operator's back
        text = kh.read_text()
        assert "[127.10.7.2]" not in text and swapped in text
        ctx.close()
    finally:
        site.lab.stop()
