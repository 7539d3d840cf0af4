"""A wave too large for one process: shards as child flow runs on two Prefect process workers, with
the Prefect server itself on PostgreSQL + Redis (the scale-out configuration), hosts leased in the
PostgreSQL state store, and every host handled exactly once.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from typer.testing import CliRunner

from tasks.inventory.model import load_inventory
from tasks.store.state import StateStore
from tests.pg_fixture import pg_cluster, pg_url  # noqa: F401 - fixtures
from tests.prefect_scale_fixture import ROOT, prefect_scale_server, stop_group  # noqa: F401 - fixture
from tests.site_fixtures import PASSWORD, device, ran_to_its_end, start_site

runner = CliRunner()


def _devices(n: int) -> list[dict]:
    out = []
    for i in range(n):
        kind = i % 6
        kw = [dict(trusted="contoso.com"), dict(dhcp="fabrikam.com"), dict(dhcp=""),
              dict(state="legacy", domain="fabrikam.com", legacy=True), dict(dhcp="contoso.net", os="linux"),
              dict(version="3.0.1")][kind]
        out.append(device(f"S-{i:03d}", f"127.10.{5 + i // 200}.{i % 200 + 1}", **kw))
    return out


def _worker(server, pool: str, name: str, extra_env: dict) -> tuple[subprocess.Popen, object]:
    log = server.dir / f"{name}.log"
    env = dict(server.env, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5", **extra_env)
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--limit", "2",
                                 "--type", "process", "--name", name], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def test_sharded_wave_on_two_workers_handles_every_host_exactly_once(tmp_path, monkeypatch, pg_url,  # noqa: F811
                                                                      prefect_scale_server):  # noqa: F811
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import app
    from flows.migrate import migrate_wave

    server = prefect_scale_server
    devs = _devices(90)
    wave = {"name": "big", "hosts": ["*"], "shard_size": 30, "shards_in_flight": 3, "max_concurrency": 8,
            "batch_size": 10, "remediation": ["dhcp_renew", "amt_write", "mebx"]}
    site = start_site(tmp_path, devs, [wave], monkeypatch, state_url=pg_url, window="60s")
    workers = []
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            res = runner.invoke(app, ["schedule", str(site.inventory), "--pool", "shards"])
            assert res.exit_code == 0, res.output
            secrets = {"AMTMIG_SSH_KEY": str(site.lab.private_key_path), "AMTMIG_LEGACY_AMT_PASSWORD": PASSWORD}
            workers = [_worker(server, "shards", f"worker-{i}", secrets) for i in range(2)]
            final = migrate_wave(str(site.inventory), "big", inventory_name="site", return_state=True)
        logs = [log.read_text(errors="replace") for _, log in workers]
        assert ran_to_its_end(final), f"{final.message}\n{server.logs()}\n" + "\n".join(x[-3000:] for x in logs)

        store = StateStore(load_inventory(site.inventory).state_url)
        status = {r.host: r.status for r in store.hosts("big")}
        assert len(status) == 90
        assert set(status.values()) == {"provisioned", "unsupported"}, Counter(status.values())
        events = store.history(wave="big")
        # exactly once: one discovery and one pass-1 decision per host, made inside a shard's flow run
        discovered = Counter(e.host for e in events if e.stage == "discovery")
        # (a host the plan adopts also gets a "route" event recording its path; that is not a decision)
        decided = Counter(e.host for e in events if e.stage == "pass1" and e.action != "route")
        assert set(discovered.values()) == {1} and len(discovered) == 90
        assert set(decided.values()) == {1} and len(decided) == 90
        shard_runs = {e.flow_run_id for e in events if e.stage == "pass1"}
        assert len(shard_runs) == 3  # 90 hosts / shard_size 30
        # both workers took shards
        assert all("shard-" in log for log in logs), "\n".join(x[-3000:] for x in logs)
        # the server really is the PostgreSQL + Redis one
        assert server.redis("TYPE", "events") == "stream"  # prefect_redis's broker carried the events
        assert "task-run-recorder" in server.redis("XINFO", "GROUPS", "events")
        # the lab's own log: nobody provisioned twice, nobody after success
        for name, d in site.admin_all().items():
            assert not any(a["after_success"] for a in d["attempts"]), name
            assert sum(a["result"] == "success" for a in d["attempts"]) == (status[name] == "provisioned"), name
    finally:
        for proc, _ in workers:
            stop_group(proc)
        site.lab.stop()


def test_shard_size_is_validated(tmp_path):
    from tasks.inventory.yaml_source import InputError

    f = tmp_path / "inv.yaml"
    f.write_text("name: x\nprovisioning: {certificate_suffix: contoso.com}\n"
                 "hosts:\n  - {name: A, address: 10.0.0.1, amt_version: '11.8'}\n"
                 "waves:\n  - {name: w, hosts: ['*'], shard_size: 3}\n")
    with pytest.raises(InputError, match="shard_size"):
        load_inventory(f)
