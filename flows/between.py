"""Between the passes: an operator's go/no-go (`gate`), or pass 2 scheduled for later (`pass2_after`)."""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from tasks.rules.host_state import Status
from tasks.steps.context import WaveContext
from tasks.store.reports import artifact_key


class GoNoGo(RunInput):
    """Pass 2 of this wave: go ahead? Answered in the UI (the paused run's Resume button shows this form)."""

    go: bool = Field(default=True, description="Run pass 2 now. Untick for no-go: pass 2 is not run "
                                               "(`amt-migrate rerun INVENTORY --wave W --from pass2` later).")
    note: str = Field(default="", description="Why: kept in the wave's history with the answer")


def continue_command(ctx: WaveContext) -> str:
    from tasks.store.reports import _inventory_arg

    return f"amt-migrate rerun {_inventory_arg(ctx.inv)} --wave {ctx.wave.name} --from pass2"


def ask_go_no_go(ctx: WaveContext) -> bool | None:
    """Pause the run (its process and worker slot stay busy) until an operator answers GoNoGo in the UI.

    No answer within the wave's gate_timeout fails the run (Prefect's pause timeout); the hosts keep
    their state, so `rerun --from pass2` continues from here. None: nobody can answer in this run (the
    embedded server has no UI): the wave waits for a decision, which is neither a go nor a no-go.
    """
    from prefect.exceptions import FlowPauseTimeout
    from prefect.settings import PREFECT_API_URL

    logger = get_run_logger()
    wave = ctx.wave.name
    counts = ctx.store.counts(wave)
    if not PREFECT_API_URL.value():
        logger.error("wave %s has gate: true, but this run uses Prefect's embedded server, where nobody can answer "
                     "the go/no-go: the wave waits for a decision before pass 2. When it is go: `%s` (or run the "
                     "wave through a Prefect server: PREFECT_API_URL, `amt-migrate schedule`)", wave,
                     continue_command(ctx))
        ctx.store.record_wave_event(wave, stage="gate", action="go-no-go", outcome="waiting",
                                    evidence={"note": "no Prefect server to answer on", "counts": counts,
                                              "continue_with": continue_command(ctx)},
                                    flow_run_id=ctx.flow_run_id)
        return None
    timeout = max(1, int(ctx.wave.gate_timeout.total_seconds()))
    waiting = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    create_markdown_artifact(
        f"# {ctx.inv.name} / {wave}: go/no-go for pass 2\n\nHosts now: {waiting}.\n\n"
        f"Pass 2 provisions the {counts.get(Status.REMEDIATED, 0)} remediated host(s). Answer with the paused "
        f"run's **Resume** button (go ticked = run pass 2; unticked = don't) within {ctx.wave.gate_timeout}.\n",
        key=artifact_key(ctx.inv.name, wave, "gate"), description=f"{wave}: waiting for go/no-go before pass 2")
    logger.info("waiting for go/no-go before pass 2 (%s): resume this run in the UI within %s", waiting,
                ctx.wave.gate_timeout)
    try:
        answer = pause_flow_run(wait_for_input=GoNoGo, timeout=timeout, poll_interval=min(5, timeout),
                                key=f"{wave}-pass2-gate")
    except FlowPauseTimeout:
        logger.error("no go/no-go within %s: the run fails here; `amt-migrate rerun INVENTORY --wave %s --from pass2` "
                     "continues when ready", ctx.wave.gate_timeout, wave)
        ctx.store.record_wave_event(wave, stage="gate", action="go-no-go", outcome="no-answer",
                                    evidence={"timeout": str(ctx.wave.gate_timeout), "counts": counts},
                                    flow_run_id=ctx.flow_run_id)
        raise
    logger.info("operator answered %s%s", "go" if answer.go else "no-go", f": {answer.note}" if answer.note else "")
    ctx.store.record_wave_event(wave, stage="gate", action="go-no-go", outcome="go" if answer.go else "no-go",
                                evidence={"note": answer.note, "counts": counts}, flow_run_id=ctx.flow_run_id)
    return answer.go


def schedule_pass2(ctx: WaveContext, inventory: str) -> str:
    """Pass 2 as a later run of the wave's deployment, once the clients' own renewals have had time.

    Idempotent per round: running the wave again before that run happened finds the same run (same
    idempotency key, same time); once it has run, a later wave run schedules a new round.
    """
    from uuid import UUID

    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.runtime import deployment, flow_run

    from flows.deployments import full_name

    logger = get_run_logger()
    wave = ctx.wave.name
    target = UUID(deployment.id) if deployment.id else full_name(ctx.inv, wave)
    params = {"inventory": inventory, "wave": wave, "inventory_name": ctx.inv.name, "from_stage": "pass2"}
    if (flow_run.parameters or {}).get("state"):
        params["state"] = flow_run.parameters["state"]
    when = datetime.now(timezone.utc) + ctx.wave.pass2_after
    round_no = int(ctx.store.wave_mark(wave, "pass2-round") or 1)
    while True:
        key = f"{ctx.inv.name}-{wave}-pass2-{round_no}"
        try:
            run = run_deployment(target, parameters=params, scheduled_time=when, timeout=0, as_subflow=False,
                                 idempotency_key=key, tags=[f"wave:{wave}", f"inventory:{ctx.inv.name}", "pass2"])
        except ObjectNotFound:
            msg = (f"pass 2 not scheduled: no deployment {full_name(ctx.inv, wave)} (`amt-migrate schedule` makes it); "
                   f"run `amt-migrate rerun INVENTORY --wave {wave} --from pass2` after {when:%Y-%m-%d %H:%M} UTC")
            ctx.store.record_wave_event(wave, stage="pass2", action="schedule", outcome="no-deployment",
                                        evidence={"due": when.isoformat()}, flow_run_id=ctx.flow_run_id)
            return msg
        if run.state is None or not run.state.is_final():
            break
        logger.info("pass 2 round %d (flow run %s) already ended %s: scheduling round %d", round_no, run.name,
                    run.state.name, round_no + 1)
        round_no += 1
    ctx.store.mark_wave(wave, "pass2-round", str(round_no))
    due = run.expected_start_time or when
    ctx.store.record_wave_event(wave, stage="pass2", action="schedule", outcome="scheduled",
                                evidence={"flow_run_id": str(run.id), "flow_run": run.name, "due": due.isoformat(),
                                          "idempotency_key": key}, flow_run_id=ctx.flow_run_id)
    return f"pass 2 scheduled for {due.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC (flow run {run.name})"
