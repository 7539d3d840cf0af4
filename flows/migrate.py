"""migrate_wave: one wave of the migration, read top to bottom.

    open the wave -> discover -> pass 1 -> remediate -> go/no-go -> pass 2 -> report

Discovery reads the suffixes each host's AMT and OS hold; pass 1 provisions every host and classifies
each failure; remediation fixes AMT's suffix inside its 24 h window (a DHCP renew, a direct write, or
the technician's MEBx list), each fix read back; the go/no-go (an operator, or a later scheduled run)
opens pass 2, which provisions the remediated hosts; the report says who is done, who is not, why,
and when their windows close. The stages live in flows/stages.py, the decision between the passes in
flows/between.py, fan-out to workers in flows/shards.py, and the per-host work in tasks/steps/.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from flows.between import ask_go_no_go, schedule_pass2
from flows.live import close_view, needs_someone, open_view, state_words, view_for, wave_finished, windows_closing
from flows.outages import PROVISIONING_DOWN, STATE_DB_DOWN, mark_orphaned_runs, stopped_message
from flows.shards import run_shards
from flows.stages import run_stage
from tasks.inventory.model import load_inventory
from tasks.rules.host_state import Status
from tasks.rules.selection import Selection
from tasks.steps.context import WaveContext, build_context, register, unregister
from tasks.store.reports import artifact_key, host_rows, summarize, summary_markdown, worklist_rows, write_wave_reports
from tasks.steps.leases import forget_run, register_run
from tasks.store.state import StateStore, StateUnavailable

STAGES = ("discovery", "pass1", "remediate", "pass2")
UNFINISHED = (Status.PENDING, Status.REMEDIATING, Status.REMEDIATED)


@dataclass
class WaveRun:
    """What one run of a wave carries from stage to stage."""

    ctx: WaveContext
    key: str  # the context's registry key: flows pass keys, never clients or secrets
    inventory: str
    state: str | None
    stages: tuple[str, ...]  # the stages this run does: all of them, or from where it resumes
    shard: bool  # a child run of a sharded wave: its parent decides and reports
    sharded: bool  # this run fans the wave out to shards
    halted: str | None = None
    note: str | None = None
    waiting: bool = False  # a gate nobody could answer in this run: the wave waits for a decision
    pass2_done: bool = False

    @property
    def wave(self) -> str:
        return self.ctx.wave.name

    def does(self, stage: str) -> bool:
        return not self.sharded and not self.halted and stage in self.stages


# -- the wave -----------------------------------------------------------------------------------

def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    inv = Path(str(params.get("inventory", "inventory"))).stem
    return f"{params.get('inventory_name') or inv}-{params.get('wave')}-{datetime.now(timezone.utc):%Y%m%d-%H%M}"


@flow(name="migrate-wave", flow_run_name=_run_name, log_prints=False)
def migrate_wave(inventory: str, wave: str, inventory_name: str | None = None, selection: dict | None = None,
                 state: str | None = None, from_stage: str = "discovery", shard: list[str] | None = None):
    """One wave end to end. `selection` (statuses, causes, host glob, from_stage) makes it a rerun of a subset;
    `from_stage` resumes a plain run later (a scheduled pass 2); `state` overrides the inventory's state URL;
    `shard` limits a child run of a sharded wave to its hosts."""
    try:
        run = open_wave(inventory, wave, selection, state, from_stage, shard)
    except StateUnavailable as exc:
        return Failed(name=STATE_DB_DOWN, message=stopped_message(str(exc), inventory, wave))
    if isinstance(run, State):
        return run  # refused before any host was touched
    try:
        if nothing_to_do(run):
            report = report_wave(run)
            return final_state(run, report)
        if run.sharded:
            run_the_shards(run)
        discover(run)
        pass_1(run)
        remediate(run)
        if go_no_go(run):
            pass_2(run)
        mark_completed(run)
        report = report_wave(run)
    except StateUnavailable as exc:  # the state database stayed away past outages.state_retry_for
        return state_db_lost(run, exc)
    finally:
        close_wave(run)
    return final_state(run, report)


def open_wave(inventory: str, wave: str, selection: dict | None, state: str | None, from_stage: str,
              shard: list[str] | None) -> WaveRun | State:
    """Load the inventory, enrol the wave's hosts in the store, build the run's adapters; refuse early
    what would fail every host later."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    inv = load_inventory(inventory)
    store = StateStore(state or inv.state_url, retry_for=inv.outages.state_retry_for)
    w = inv.wave(wave)
    sel = Selection.from_dict(selection)
    store.ensure_hosts(w.name, [(h.name, h.address) for h in inv.wave_hosts(w)])
    ctx = build_context(inv, wave, store, flow_run_id=str(flow_run.id) if flow_run.id else None)
    ctx.selected = sel.resolve(store.hosts(w.name)) if sel.explicit else None
    ctx.from_stage = sel.from_stage if sel.explicit else from_stage
    if sel.explicit:  # each host starts where --from says, or (auto) where its status and cause call for
        ctx.start_at = sel.starts(store.hosts(w.name))
        ctx.from_stage = min(ctx.start_at.values(), key=STAGES.index, default="pass2")
    ctx.restrict = set(shard) if shard else None
    for what, why in ctx.unavailable.items():
        logger.warning("%s not available: %s", what, why)
    missing_limit = _missing_concurrency_limit(inv.provisioning.concurrency_limit)
    if missing_limit:
        store.close()
        ctx.close()
        return Failed(message=missing_limit)
    if sel.explicit:
        logger.info("rerun of %d host(s) from %s: %s", len(ctx.selected), sel.from_stage,
                    ", ".join(sorted(ctx.selected)[:50]))
    sharded = not shard and bool(w.shard_size) and len(ctx.hosts_by_name) > w.shard_size
    register_run(ctx.lease_keeper, ctx.flow_run_id)  # this run at work on the wave, beaten with its leases
    mark_orphaned_runs(ctx)  # earlier runs an outage left "Running" on the server: said Crashed, and why
    open_view(ctx)  # the live artifact on this run's page, and the "wave started" event
    return WaveRun(ctx, register(ctx), inventory, state, STAGES[STAGES.index(ctx.from_stage):], shard=bool(shard),
                   sharded=sharded)


def nothing_to_do(run: WaveRun) -> bool:
    """A plain run of a completed wave does nothing, unless hosts were added to the wave since."""
    store, wave = run.ctx.store, run.wave
    done_at = store.wave_mark(wave, "completed")
    if run.ctx.selected is not None or not done_at:
        store.clear_wave_mark(wave, "completed")
        return False
    new = store.counts(wave).get(Status.PENDING, 0)
    if new:
        get_run_logger().info("wave %s completed at %s, but %d host(s) were added since: running them", wave, done_at,
                              new)
        store.clear_wave_mark(wave, "completed")
        return False
    get_run_logger().info("wave %s already completed at %s: nothing to do (use `amt-migrate rerun` to act again)",
                          wave, done_at)
    run.pass2_done = True
    return True


def run_the_shards(run: WaveRun) -> None:
    """Each shard runs every stage itself; gate and pass2_after apply only to unsharded waves."""
    w = run.ctx.wave
    run.halted = run_shards(run.ctx, run.inventory, run.state)
    if w.gate or w.pass2_after:
        get_run_logger().warning("wave %s is sharded: its shards ran pass 2 themselves; gate and pass2_after "
                                 "apply only to unsharded waves", w.name)
    run.pass2_done = not run.halted


def discover(run: WaveRun) -> None:
    """Read each host's AMT and OS suffixes, and where each came from, before any attempt."""
    if run.does("discovery"):
        run_stage(run.ctx, run.key, "discovery")


def pass_1(run: WaveRun) -> None:
    """Provision every host once; classify each failure (suffix mismatch, blank, window closed, ...)."""
    if run.does("pass1"):
        run.halted = run_stage(run.ctx, run.key, "pass1")


def remediate(run: WaveRun) -> None:
    """Fix AMT's suffix on the hosts pass 1 failed for it, each method verified by reading AMT back."""
    if run.does("remediate"):
        run.halted = run_stage(run.ctx, run.key, "remediate")


def go_no_go(run: WaveRun) -> bool:
    """Does pass 2 run now? A run resuming at pass 2, or a shard, has had its decision already; otherwise
    the wave's gate asks an operator, and pass2_after schedules pass 2 as a later run instead."""
    if not run.does("pass2"):
        return False
    w = run.ctx.wave
    resumed_at_pass2 = run.stages[0] == "pass2"
    if resumed_at_pass2 or run.shard:
        return True
    if w.gate:
        answer = ask_go_no_go(run.ctx)
        if answer is None:
            from flows.between import continue_command

            run.waiting = True
            run.note = (f"waiting for a go/no-go decision before pass 2 (nobody can answer on the embedded "
                        f"server); when it is go: {continue_command(run.ctx)}")
            return False
        if not answer:
            run.note = "gate: no-go, pass 2 not run; rerun --from pass2 when ready"
            return False
    if w.pass2_after:
        run.note = schedule_pass2(run.ctx, run.inventory)
        return False
    return True


def pass_2(run: WaveRun) -> None:
    """Provision the remediated hosts (and, with pass2_include_failed, failed ones whose window is open)."""
    run.halted = run_stage(run.ctx, run.key, "pass2")
    run.pass2_done = True


def mark_completed(run: WaveRun) -> None:
    """A plain run that finished every host marks the wave completed, so running it again does nothing."""
    store, wave = run.ctx.store, run.wave
    unfinished = sum(store.counts(wave).get(st, 0) for st in UNFINISHED)
    if not run.halted and run.ctx.selected is None and run.pass2_done and not unfinished and not run.shard:
        store.mark_wave(wave, "completed")
    if run.note:
        get_run_logger().warning(run.note)


def report_wave(run: WaveRun) -> dict:
    """Files beside the state and the operator's artifacts, made in the wave's own run so its page shows
    them; a shard's parent reports on the whole wave."""
    ctx = run.ctx
    records = ctx.store.hosts(run.wave)
    summary = summarize(records, run.wave)
    if run.shard:
        return {"summary": summary.__dict__, "files": {}, "markdown": ""}
    mebx = worklist_rows(ctx.inv, [r for r in records if r.status == Status.NEEDS_MEBX])
    create_table_artifact(mebx or [{"host": "", "why_remote_failed": "no host needs a technician"}],
                          key=artifact_key(ctx.inv.name, run.wave, "mebx-worklist"),
                          description=f"Technician (MEBx) work list: enter DNS suffix {ctx.cert_suffix}")
    files = write_wave_reports(ctx.inv, ctx.store, run.wave, halted=run.halted, forecast_html=forecast_section(ctx))
    create_table_artifact(host_rows(records), key=artifact_key(ctx.inv.name, run.wave, "hosts"),
                          description=f"Hosts of {run.wave}: status, cause, evidence, window, next step")
    md = summary_markdown(ctx.inv, summary, halted=run.halted, files=files)
    if run.waiting:
        md += f"\n**Waiting for a decision:** {run.note}\n"
    create_markdown_artifact(md, key=artifact_key(ctx.inv.name, run.wave, "summary"),
                             description=f"Summary of {run.wave}")
    view_for(ctx).refresh(force=True)  # the live view's last version
    windows_closing(ctx)  # the event automations use to warn of windows about to close
    return {"summary": summary.__dict__, "files": {k: str(v) for k, v in files.items()}, "markdown": md,
            "waiting": run.waiting}


def forecast_section(ctx: WaveContext) -> str:
    """report.html's forecast vs actual (and forecast.html beside it); a forecast that fails never fails the run."""
    from flows.forecast_view import report_section
    from tasks.store.reports import reports_dir

    try:
        return report_section(ctx.inv, ctx.wave.name, reports_dir(ctx.inv) / ctx.wave.name)
    except Exception as exc:  # noqa: BLE001 - the report must be written whatever the forecast does
        get_run_logger().warning("forecast for report.html failed: %s", exc)
        return ""


def close_wave(run: WaveRun) -> None:
    close_view(run.ctx)
    unregister(run.key)
    run.ctx.store.close()


def state_db_lost(run: WaveRun, exc: StateUnavailable) -> State:
    """The run's last word when its state database went away for good: no report (it would need the
    database), every host as last recorded, the command that continues."""
    message = stopped_message(str(exc), run.inventory, run.wave)
    get_run_logger().error("%s", message)
    wave_finished(run.ctx.inv.name, run.wave, STATE_DB_DOWN, message, {"by_status": {}, "total": 0}, str(exc))
    return Failed(name=STATE_DB_DOWN, message=message, data={"outage": "state", "message": message})


def final_state(run: WaveRun, report: dict) -> State:
    """Completed only when every host is done (or only waits for pass 2); a wave that leaves hosts failed
    or for a technician ends Failed-typed (red in the UI and counted by the dashboard) under a name that
    says so ("Completed with 5 failed, 2 for a technician"); a halted wave is Failed, named "Halted"."""
    name, message = state_words(report["summary"], halted=run.halted, note=run.note)
    if run.ctx.outage:  # the provisioning server went away: the run stopped, it did not halt on the hosts
        name, message = PROVISIONING_DOWN, stopped_message(run.ctx.outage, run.inventory, run.wave) + f"; {message}"
        report = {**report, "outage": "provisioning"}
    if not run.shard:
        wave_finished(run.ctx.inv.name, run.wave, name, message, report["summary"], run.halted)
    red = run.halted or needs_someone(report["summary"])
    ended(run)
    return (Failed if red else Completed)(name=name, message=message, data=report)


def ended(run: WaveRun) -> None:
    """The run reached its last word: it is no orphan (a run that lost its Prefect server keeps its mark, so the
    next run says on the server what became of it); runs whose machine was lost meanwhile are marked now."""
    mark_orphaned_runs(run.ctx)
    forget_run(run.ctx.store, run.wave, run.ctx.flow_run_id)


def _missing_concurrency_limit(name: str | None) -> str | None:
    """A misspelt global limit would otherwise fail every batch mid-wave; refuse before touching a host."""
    if not name:
        return None
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return (f"global concurrency limit {name!r} (provisioning.concurrency_limit) does not exist: create it "
                    f"with `prefect global-concurrency-limit create {name} --limit N`; no host was touched")
    if limit.limit < 1 or not limit.active:
        return (f"global concurrency limit {name!r} (provisioning.concurrency_limit) is "
                f"{'inactive' if not limit.active else f'set to {limit.limit}'}: no host could ever be provisioned; "
                f"set it active and >= 1 (`prefect global-concurrency-limit update {name} --limit N`); "
                f"no host was touched")
    return None
