"""What an operator reads about a wave: state names and messages, the batch states, the live artifact on
the wave's own run, the rerun's own keys. Pure functions first, then one wave with failures against the lab
under Prefect's test server."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from flows.live import StageProgress, Snapshot, live_markdown, state_words, time_left
from flows.stages import batch_state
from tasks.rules.host_state import Cause
from tasks.steps.outcome import HostOutcome, Result
from tests.site_fixtures import device, start_site


def _summary(**by_status):
    return {"total": sum(by_status.values()), "by_status": by_status,
            "by_cause": {"unreachable": by_status.get("failed", 0)} if by_status.get("failed") else {}}


def test_a_wave_with_every_host_done_is_plain_completed():
    assert state_words(_summary(provisioned=3, unsupported=1), halted=None, note=None) == (
        "Completed", "3 of 4 provisioned; 1 unsupported")


def test_hosts_left_for_a_technician_are_in_the_state_name():
    name, message = state_words(_summary(provisioned=20, needs_mebx=8), halted=None, note=None)
    assert name == "Completed with 8 hosts for a technician"
    assert message.startswith("20 of 28 provisioned") and "8 for a technician" in message


def test_failed_and_technician_hosts_are_both_named_and_the_note_kept_after_the_count():
    name, message = state_words(_summary(provisioned=3, failed=17, needs_mebx=8), halted=None,
                                note="pass 2 scheduled for 10:00")
    assert name == "Completed with 17 failed, 8 for a technician"
    assert message.startswith("3 of 28 provisioned; pass 2 scheduled for 10:00")
    assert "causes: unreachable 17" in message


def test_a_halted_wave_says_halted_with_the_counts():
    name, message = state_words(_summary(provisioned=2, failed=3, pending=5), halted="3 of 10 hosts failed",
                                note=None)
    assert name == "Halted"
    assert message.startswith("halted: 3 of 10 hosts failed; 2 of 10 provisioned")
    assert "5 not finished" in message


def test_a_batch_with_failed_hosts_says_how_many_and_why_and_keeps_its_outcomes():
    outs = [HostOutcome("A", Result.PROVISIONED), HostOutcome("B", Result.FAILED, Cause.UNREACHABLE),
            HostOutcome("C", Result.FAILED, Cause.UNREACHABLE), HostOutcome("D", Result.NEEDS_MEBX, Cause.SUFFIX_MISMATCH)]
    st = batch_state(outs)
    assert st.is_completed() and st.name == "Completed with 3 of 4 hosts not done"
    assert st.message == "3 of 4 hosts not done: failed:unreachable 2: B, C; needs_mebx:suffix_mismatch 1: D"
    assert st.result() == outs
    ok = batch_state(outs[:1])
    assert ok.name == "Completed" and ok.message == "1 host(s): provisioned 1: A"


def test_live_markdown_shows_progress_counts_causes_and_time_left():
    now = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    snap = Snapshot("site", "w", "run", "pass1",
                    {"discovery": StageProgress(8, 8, "done"), "pass1": StageProgress(3, 8, "running"),
                     "remediate": StageProgress(), "pass2": StageProgress()},
                    {"provisioned": 1, "pending": 5, "failed": 2},
                    {"failed/unreachable": {"status": "failed", "cause": "unreachable", "count": 7,
                                            "hosts": ["A", "B", "C", "D", "E"], "next": "check the host"}},
                    [{"host": "A", "status": "failed", "cause": "unreachable", "closes_at": now + timedelta(hours=3, minutes=5)}],
                    at=now)
    md = live_markdown(snap)
    assert "# site / w (run): pass 1 in flight" in md
    assert "**1 of 8 hosts done**" in md
    assert "| pass 1 | 3 of 8 hosts (37%) | **running** |" in md
    assert "| remediation | 0 of 0 hosts | not started |" in md
    assert "| failed | unreachable | 7 | check the host | A, B, C, D, E and 2 more |" in md
    assert "| A | failed | unreachable | 2026-11-25 13:05 | 3 h 05 min |" in md
    assert time_left(now - timedelta(seconds=1), now) == "closed"


# -- one wave with failures under Prefect's test server ---------------------------------------------------

HOSTS = [
    ("V-OK", "127.10.7.1", dict(trusted="contoso.com")),
    ("V-MISMATCH", "127.10.7.2", dict(dhcp="fabrikam.com")),
    ("V-DOWN", "127.10.7.3", dict(dhcp="fabrikam.com", faults=["down"])),
    ("V-STUCK", "127.10.7.4", dict(dhcp="fabrikam.com", faults=["renew_ignored"])),
]


@pytest.fixture(scope="module")
def view_site(tmp_path_factory, prefect_harness):
    import os

    tmp = tmp_path_factory.mktemp("view")
    site = start_site(tmp, [device(n, a, **kw) for n, a, kw in HOSTS],
                      [{"name": "w", "hosts": ["V-*"], "batch_size": 2, "max_concurrency": 2,
                        "remediation": ["dhcp_renew", "mebx"]}], window="60s")
    old = {k: os.environ.get(k) for k in ("AMTMIG_SSH_KEY", "AMTMIG_LEGACY_AMT_PASSWORD")}
    os.environ["AMTMIG_SSH_KEY"] = str(site.lab.private_key_path)
    from tests.site_fixtures import PASSWORD

    os.environ["AMTMIG_LEGACY_AMT_PASSWORD"] = PASSWORD
    yield site
    site.lab.stop()
    for k, v in old.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _artifacts(like: str) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as c:
        return {a.key: a for a in c.read_latest_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=like)))}


def _task_runs(flow_run_ids: list) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as c:
        subs = c.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=flow_run_ids)))
        return c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[s.id for s in subs])))


def test_a_wave_with_failures_says_so_in_its_state_batches_and_live_artifact(view_site):
    from flows.migrate import migrate_wave

    final = migrate_wave(str(view_site.inventory), "w", inventory_name="site", return_state=True)
    assert final.is_failed()  # not green: hosts are left for people to act on
    assert final.name == "Completed with 1 failed, 1 for a technician", (final.name, final.message)
    assert final.message.startswith("2 of 4 provisioned") and "unreachable 1" in final.message, final.message
    run_id = final.state_details.flow_run_id

    arts = _artifacts("site-w-%")
    live = arts["site-w-run-live"]
    assert live.flow_run_id == run_id  # on the wave's own page, not a stage subflow's
    assert "**2 of 4 hosts done**" in live.data, live.data
    assert "| pass 1 | 4 of 4 hosts (100%) | done |" in live.data, live.data
    assert "| failed | unreachable | 1 | check the host is on and reachable, then rerun | V-DOWN |" in live.data
    assert "| needs_mebx | suffix_mismatch | 1 | a technician enters contoso.com in MEBx" in live.data
    assert "## Windows closing soonest" in live.data and "| V-STUCK | needs_mebx |" in live.data
    assert arts["site-w-pass1-progress"].flow_run_id == run_id and arts["site-w-pass1-progress"].data == 100.0

    # the pass 1 batch that met V-DOWN says so in its own state
    runs = _task_runs([run_id])
    bad = [t for t in runs if t.name.startswith("pass 1 ·") and t.state.name != "Completed"]
    assert bad, [(t.name, t.state.name) for t in runs]
    assert any("failed:unreachable 1: V-DOWN" in (t.state.message or "") for t in bad), [t.state.message for t in bad]

    # a rerun of one host has its own keys: the wave's live view and progress still read 4 of 4
    again = migrate_wave(str(view_site.inventory), "w", inventory_name="site", return_state=True,
                         selection={"statuses": ["failed"], "explicit": True, "from_stage": "pass1"})
    assert again.is_failed() and again.name.startswith("Completed with"), again.name
    arts = _artifacts("site-w-%")
    assert "site-w-rerun-live" in arts and "site-w-rerun-pass1-progress" in arts, sorted(arts)
    assert "| pass 1 | 1 of 1 hosts (100%) | done |" in arts["site-w-rerun-live"].data
    assert "| pass 1 | 4 of 4 hosts (100%) | done |" in arts["site-w-run-live"].data
    assert json.loads(json.dumps(arts["site-w-pass1-progress"].data)) == 100.0
    assert "4 of 4" in arts["site-w-pass1-progress"].description


def test_the_cli_prints_plain_progress_lines_when_piped_and_names_hosts_and_next_commands(view_site):
    """CliRunner's output is not a terminal: a line per stage start/end/tenth, no bar; then the closing summary."""
    from typer.testing import CliRunner

    from flows.cli import app

    res = CliRunner().invoke(app, ["rerun", str(view_site.inventory), "--wave", "w", "--status", "failed",
                                   "--status", "needs_mebx", "--from", "pass1"])
    out = res.stdout
    # the needs_mebx host waits for its technician's visit to be recorded: pass 1 retries V-DOWN alone
    assert "w pass 1: 0 of 1 hosts (running)" in out and "w pass 1: 1 of 1 hosts (done)" in out, out
    assert "Completed with 1 failed, 1 for a technician: " in out, out
    assert "  failed / unreachable: 1: V-DOWN" in out and "  needs_mebx / suffix_mismatch: 1: V-STUCK" in out, out
    assert "record each visit\n  amt-migrate mebx done " in out, out
    assert "--wave w --status needs_mebx --from pass2" in out
    assert "report_html: " in out and "━" not in out  # no progress bar drawn into a pipe


def test_the_closing_summary_names_the_first_hosts_then_how_many_more(tmp_path):
    from flows.terminal import closing_summary
    from tests.test_report_html import _inventory

    inv = _inventory(tmp_path)
    summary = {"wave": "w", "total": 12, "by_status": {"failed": 7, "provisioned": 5}, "by_cause": {"unreachable": 7},
               "limit_failures": 7, "needs_mebx": []}
    lines = closing_summary(inv, summary, {("failed", "unreachable"): [f"H{i}" for i in range(7)]},
                            "Completed with 7 failed", "5 of 12 provisioned")
    assert lines[0] == "Completed with 7 failed: 5 of 12 provisioned"
    assert lines[1] == "  failed / unreachable: 7: H0, H1, H2, H3, H4 and 2 more"
    assert lines[2] == "next:" and "--wave w --status failed --status remediation_failed" in lines[3]


def test_the_documented_halt_automation_is_one_prefect_accepts():
    """docs/prefect.md's automation parses as Prefect's own automation model, on the event the wave emits."""
    from pathlib import Path

    import yaml
    from prefect.events.schemas.automations import AutomationCore

    doc = (Path(__file__).resolve().parent.parent / "docs" / "prefect.md").read_text()
    text = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    auto = AutomationCore.model_validate(yaml.safe_load(
        text.replace("<id of the ops-email block>", "00000000-0000-0000-0000-000000000001")))
    assert auto.trigger.expect == {"amt-migrate.wave.halted"} and auto.actions[0].type == "send-notification"
