"""Two `run`s of the same wave at once, against one lab and one state database: hosts are leased, so no
host is provisioned twice or attempted by both runs in one pass, and both runs finish cleanly. Their
console output is also searched for the known secrets.
"""

from __future__ import annotations

from pathlib import Path

from tasks.inventory.model import load_inventory
from tasks.store.state import StateStore
from tests.site_fixtures import PASSWORD, device, start_site
from tests.test_reliability_crash import (  # noqa: F401 - prefect_api_url is a fixture
    history_is_whole,
    kill_group,
    lab_attempts,
    prefect_api_url,
    run_env,
    start_run,
)


def test_two_runs_of_one_wave_at_once_never_handle_a_host_twice(tmp_path, prefect_api_url):
    devs = [device(f"P-{i:02d}", f"127.10.12.{i + 1}", dhcp="fabrikam.com" if i % 2 else "",
                   trusted="contoso.com" if i % 3 == 0 else "", os="linux" if i % 4 == 1 else "windows")
            for i in range(30)]
    devs += [device("P-LEGACY", "127.10.12.40", state="legacy", domain="fabrikam.com", legacy=True),
             device("P-DOWN", "127.10.12.41", faults=["down"])]
    site = start_site(tmp_path, devs, [{"name": "w", "hosts": ["*"], "max_concurrency": 4, "batch_size": 2,
                                        "remediation": ["amt_write", "dhcp_renew", "mebx"]}],
                      # pass 1 alone is ~10 s of work at 4 at a time: the run that gets there second still
                      # finds hosts nobody holds, so leases are tested where a run acts, not only reads
                      window="90s", latency={"provision": "1s-1500ms", "renew": "300ms-500ms", "ssh": "20ms-50ms"})
    procs = []
    try:
        for i in (1, 2):
            env = run_env(site, prefect_api_url, tmp_path / f"home{i}")
            procs.append(start_run(site, env, out=tmp_path / f"run{i}.log"))
        codes = [p.wait(300) for p in procs]
        logs = [(tmp_path / f"run{i}.log").read_text() for i in (1, 2)]
        # both ran to their end; P-DOWN is left failed, so each exits 4 (hosts left), not 1 (halted/failed)
        assert codes == [4, 4], [log[-3000:] for log in logs]

        store = StateStore(load_inventory(site.inventory).state_url)
        final = {r.host: r.status for r in store.hosts("w")}
        assert final["P-DOWN"] == "failed" and final["P-LEGACY"] == "provisioned"
        assert sum(s == "provisioned" for s in final.values()) == len(devs) - 1, final
        events = store.history(wave="w")
        runs = {e.flow_run_id for e in events if e.flow_run_id}
        pass1_by_run = {r: sum(1 for e in events if e.flow_run_id == r and e.stage == "pass1") for r in runs}
        assert len(runs) == 2 and all(pass1_by_run.values()), f"both runs should have provisioned: {pass1_by_run}"

        truth = site.admin_all()
        for name, status in final.items():
            attempts = lab_attempts(truth[name])
            # never provisioned twice, never asked after its success
            assert sum(a["result"] == "success" for a in attempts) == (status == "provisioned"), (name, attempts)
            assert not any(a.get("after_success") for a in attempts), (name, attempts)
            assert store.get("w", name).attempts == len(attempts), (name, attempts)
            history_is_whole(store, "w", name, status)
            # discovery only reads (the status stays pending), so both runs may read a host one after the
            # other; every stage that acts is done by exactly one run
            for stage in ("pass1", "remediate", "pass2"):
                by = {e.flow_run_id for e in events if e.host == name and e.stage == stage}
                assert len(by) <= 1, f"{name}: {stage} handled by {len(by)} runs"
            one_pass1 = [e for e in events if e.host == name and e.stage == "pass1" and e.action in ("provision", "observe")]
            assert len(one_pass1) == 1, (name, one_pass1)

        # what the operator saw on the console carries no secret
        key_lines = [ln for ln in Path(site.lab.private_key_path).read_text().splitlines()
                     if ln and not ln.startswith("-----")]
        for log in logs:
            assert PASSWORD not in log
            assert not [ln for ln in key_lines if ln in log]
    finally:
        for p in procs:
            if p.poll() is None:
                kill_group(p)
        site.lab.stop()
