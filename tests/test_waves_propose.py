"""`amt-migrate waves propose` (issue 18): the fragment validates when included, never splits a scope with
--by scope, puts the hosts that need a person first, keeps each location's technician visits per wave within
what its technicians make in one window, and respects --per-day."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from flows.cli import app
from tasks.inventory.model import load_inventory

runner = CliRunner()


def _inventory(tmp_path, sizes: dict[int, int], technicians: dict[int, int] | None = None) -> dict:
    """Scopes site-N (10.N.0.0/16) with `sizes[N]` hosts; hosts 0..t-1 of site N activated with nobody's password
    (a technician's visit) when technicians[N] = t; the rest mismatch and are fixed by a renew."""
    hosts = []
    for site, n in sizes.items():
        for i in range(n):
            h = {"name": f"S{site:02d}-{i:03d}", "address": f"10.{site}.0.{i + 1}", "amt_version": "11.8.50",
                 "amt_suffix": "fabrikam.com", "tags": [f"site-{site:02d}", "floor" + str(i % 3)]}
            if i < (technicians or {}).get(site, 0):
                h = {**h, "amt_state": "activated", "control_mode": "acm", "legacy_managed": False}
                h.pop("amt_suffix")
            hosts.append(h)
    return {"name": "prop", "provisioning": {"server": "lab", "url": "http://127.0.0.1:9",
                                             "certificate_suffix": "contoso.com", "rate": "60/h"},
            "credentials": {"ssh": {"user": "m", "key_env": "K"}},
            "technicians": {f"site-{s:02d}": "4/day" for s in sizes},
            "dhcp_scopes": [{"name": f"site-{s:02d}", "subnet": f"10.{s}.0.0/16", "domain_name": "contoso.com"}
                            for s in sizes],
            "hosts": hosts}


def _propose(tmp_path, data: dict, *args: str):
    src = tmp_path / "fleet.yaml"
    src.write_text(yaml.safe_dump(data, sort_keys=False))
    frag = tmp_path / "waves.yaml"
    res = runner.invoke(app, ["waves", "propose", str(src), "-o", str(frag), "--start", "2027-01-04T07:00:00Z", *args])
    assert res.exit_code == 0, res.output
    main = tmp_path / "with-waves.yaml"
    main.write_text("include: [waves.yaml]\n" + src.read_text())
    ok = runner.invoke(app, ["validate", str(main)])
    assert ok.exit_code == 0, ok.output
    return res.stdout, load_inventory(main)


def test_by_scope_never_splits_a_scope_and_validates(tmp_path):
    sizes = {1: 30, 2: 45, 3: 12, 4: 70, 5: 8, 6: 25}
    text, inv = _propose(tmp_path, _inventory(tmp_path, sizes), "--max-hosts", "60")
    seen = {}
    for w in inv.waves:
        hosts = inv.wave_hosts(w)
        assert len(hosts) <= 60 or {inv.scope_of(h).name for h in hosts} == {"site-04"}
        for h in hosts:
            seen.setdefault(inv.scope_of(h).name, set()).add(w.name)
    assert all(len(waves) == 1 for waves in seen.values()), seen  # each scope in exactly one wave
    assert sum(len(inv.wave_hosts(w)) for w in inv.waves) == sum(sizes.values())
    assert "note: site-04: 70 hosts, more than --max-hosts 60: kept whole in a wave of its own" in text
    assert text.count("  forecast wave-") == len(inv.waves)


def test_hosts_that_need_a_person_go_first_within_the_technicians_capacity(tmp_path):
    # sites 3 and 5 share the technicians at `north`: 8/day over a 24 h window is 8 visits per wave, so site-03's
    # 6 and site-05's 3 can't share a wave; the scopes with the most people start first, site-01 (20 hosts, no
    # person) last although it is the biggest
    data = _inventory(tmp_path, {1: 20, 3: 10, 5: 10}, technicians={3: 6, 5: 3})
    for h in data["hosts"]:
        if h["name"].startswith(("S03", "S05")):
            h["location"] = "north"
    data["technicians"] = {"north": "8/day", "site-01": "4/day"}
    text, inv = _propose(tmp_path, data, "--max-hosts", "25")
    scopes = [{inv.scope_of(h).name for h in inv.wave_hosts(w)} for w in inv.waves]
    assert scopes == [{"site-03"}, {"site-05"}, {"site-01"}]
    assert inv.waves[0].start.isoformat() == "2027-01-04T07:00:00+00:00" and inv.waves[1].start > inv.waves[0].start
    assert "6 need a person" in text.split("wave-2:")[0] and "3 need a person" in text.split("wave-2:")[1]


def test_per_day_and_the_servers_pace_space_the_waves(tmp_path):
    text, inv = _propose(tmp_path, _inventory(tmp_path, {1: 10, 2: 10, 3: 10}), "--max-hosts", "10",
                         "--per-day", "15")
    starts = [w.start for w in inv.waves]
    assert [s.date().isoformat() for s in starts] == ["2027-01-04", "2027-01-05", "2027-01-06"]  # 10 + 10 > 15


def test_by_tag_uses_tag_selectors_when_the_tag_is_whole(tmp_path):
    text, inv = _propose(tmp_path, _inventory(tmp_path, {1: 5, 2: 5}), "--max-hosts", "5", "--by", "tag")
    assert sorted(s for w in inv.waves for s in w.hosts) == ["tag:site-01", "tag:site-02"]


def test_bad_choices_are_refused(tmp_path):
    src = tmp_path / "fleet.yaml"
    src.write_text(yaml.safe_dump(_inventory(tmp_path, {1: 3}), sort_keys=False))
    res = runner.invoke(app, ["waves", "propose", str(src), "--max-hosts", "5", "--by", "rack", "-o",
                              str(tmp_path / "w.yaml")])
    assert res.exit_code == 2 and "--by 'rack': choose from scope, tag, location" in res.output
    (tmp_path / "w.yaml").write_text("x")
    res = runner.invoke(app, ["waves", "propose", str(src), "--max-hosts", "5", "-o", str(tmp_path / "w.yaml")])
    assert res.exit_code == 2 and "exists" in res.output
