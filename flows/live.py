"""The operator's live view of a wave: one artifact on the wave's own run, Prefect events, listeners.

Prefect shows a subflow's artifacts on the subflow's page, so the view is written with the wave run's
id (not the stage's): the operator opens the wave and reads, while it runs, hosts per status and per
cause, each stage's progress, the windows closing soonest and the next action per cause. The
markdown artifact is created once and updated in place (PATCH /artifacts/{id}); its key carries the
run kind, so a rerun of 3 hosts has its own view and never makes the wave's read "3 of 3".

Events (`prefect.events.emit_event`) let Prefect automations act: wave started, halted, finished;
a host needs a technician; windows of unfinished hosts close within WINDOW_WARNING. Listeners (the
terminal progress of flows/terminal.py) get the same snapshots in this process.

Everything here is derived from the state store, never from Prefect's API (which lags under load).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tasks.rules.host_state import Cause, Status
from tasks.steps.context import WaveContext
from tasks.steps.outcome import HostOutcome, Result
from tasks.steps.provision import NEXT_STEP
from tasks.store.reports import artifact_key

log = logging.getLogger("amt_migrate.live")

STAGE_TITLES = {"discovery": "discovery", "pass1": "pass 1", "remediate": "remediation", "pass2": "pass 2"}
STATUS_ORDER = [s.value for s in (Status.PROVISIONED, Status.UNSUPPORTED, Status.PENDING, Status.FAILED,
                                  Status.REMEDIATING, Status.REMEDIATED, Status.NEEDS_MEBX,
                                  Status.REMEDIATION_FAILED)]
DONE = {Status.PROVISIONED.value, Status.UNSUPPORTED.value}
WINDOW_WARNING = timedelta(hours=4)  # "windows closing" event: unfinished hosts whose 24 h window ends sooner
SOONEST = 10  # windows listed on the live view
EXAMPLES = 5  # host names shown per cause
MIN_INTERVAL = 2.0  # seconds between two refreshes of the live artifact (each reads the store)

Listener = Callable[["Snapshot"], None]
LISTENERS: list[Listener] = []  # the terminal registers here for the length of one `run`/`rerun`


@dataclass
class StageProgress:
    done: int = 0
    total: int = 0
    state: str = "not started"  # not started | running | done | halted


@dataclass
class Snapshot:
    """What every view shows, at one moment."""

    inventory: str
    wave: str
    kind: str
    in_flight: str | None
    stages: dict[str, StageProgress]
    by_status: dict[str, int]
    by_cause: dict[str, dict]  # "status/cause" -> {"status", "cause", "count", "hosts": [...], "next": str}
    soonest: list[dict]  # {"host", "status", "cause", "closes_at"}
    halted: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    forecast: dict | None = None  # the forecast made when the run started (flows/forecast_view.py)
    reached: dict = field(default_factory=dict)  # share of hosts done -> when a refresh first saw it


def run_kind(ctx: WaveContext) -> str:
    return "rerun" if ctx.selected is not None else "run"


def progress_key(ctx: WaveContext, stage: str) -> str:
    """A plain run's keys are the wave's own; a rerun's carry `rerun` and never overwrite them."""
    kind = run_kind(ctx)
    parts = [ctx.inv.name, ctx.wave.name] + (["rerun"] if kind == "rerun" else []) + [stage, "progress"]
    return artifact_key(*parts)


def live_key(ctx: WaveContext) -> str:
    return artifact_key(ctx.inv.name, ctx.wave.name, run_kind(ctx), "live")


def wave_resource(inventory: str, wave: str) -> dict[str, str]:
    return {"prefect.resource.id": f"amt-migrate.wave.{inventory}.{wave}", "prefect.resource.name": wave,
            "amt-migrate.inventory": inventory, "amt-migrate.wave": wave}


def next_action(status: str, cause: str | None, cert_suffix: str) -> str:
    if status == Status.NEEDS_MEBX:
        return (f"a technician enters {cert_suffix} in MEBx (work list); `amt-migrate mebx done` records it; "
                "then rerun --status needs_mebx --from pass2")
    if status == Status.REMEDIATED:
        return "pass 2 provisions it (or rerun --status remediated --from pass2)"
    if status == Status.REMEDIATING:
        return "remediation in progress (a rerun --from remediate resumes it)"
    if status == Status.PENDING:
        return "waits for its stage"
    if status == Status.REMEDIATION_FAILED:
        return "see evidence; rerun --status remediation_failed --from remediate"
    try:
        return NEXT_STEP[Cause(cause)] if cause else "rerun"
    except ValueError:
        return "rerun"


# -- the view ---------------------------------------------------------------------------------------

class WaveView:
    """The live artifact and progress artifacts of one wave run, on that run's page."""

    def __init__(self, ctx: WaveContext):
        self.ctx = ctx
        self.kind = run_kind(ctx)
        self.stages = {s: StageProgress() for s in STAGE_TITLES}
        self.in_flight: str | None = None
        self.halted: str | None = None
        self._live_id = None
        self._progress_ids: dict[str, object] = {}
        self._last = 0.0
        self._lock = threading.Lock()
        self._mebx_told: set[str] = set()
        self.forecast: dict | None = None
        self.reached: dict = {}

    # -- Prefect artifacts, made on the wave's run (self.ctx.flow_run_id), not the stage subflow's
    def _client(self):
        from prefect.client.orchestration import get_client

        return get_client(sync_client=True)

    def _create(self, kind: str, key: str, data, description: str):
        from prefect.client.schemas.actions import ArtifactCreate

        with self._client() as c:
            return c.create_artifact(ArtifactCreate(type=kind, key=key, data=data, description=description,
                                                    flow_run_id=self.ctx.flow_run_id)).id

    def _update(self, artifact_id, data, description: str | None = None) -> None:
        from prefect.client.schemas.actions import ArtifactUpdate

        with self._client() as c:
            c.update_artifact(artifact_id, ArtifactUpdate(data=data, description=description))

    def _safely(self, what: str, fn: Callable[[], object]):
        """A view that cannot reach the API must never fail the wave: log once per call and go on."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the store, not the view, is the truth
            log.warning("operator view: %s failed: %s", what, exc)
            return None

    # -- stage progress
    def stage_started(self, stage: str, total: int) -> None:
        st = self.stages[stage]
        st.done, st.total, st.state = 0, total, "running" if total else "done"
        self.in_flight = stage if total else self.in_flight
        if self.ctx.flow_run_id:
            self._progress_ids[stage] = self._safely("progress artifact", lambda: self._create(
                "progress", progress_key(self.ctx, stage), 0.0 if total else 100.0,
                f"{self.ctx.wave.name} {self.kind} · {STAGE_TITLES[stage]}: 0 of {total} hosts"))
        self.refresh(force=True)

    def stage_progress(self, stage: str, done: int) -> None:
        st = self.stages[stage]
        if done == st.done:
            return
        st.done = done
        pid = self._progress_ids.get(stage)
        if pid:
            desc = f"{self.ctx.wave.name} {self.kind} · {STAGE_TITLES[stage]}: {done} of {st.total} hosts"
            self._safely("progress update", lambda: self._update(pid, 100.0 * done / max(st.total, 1), desc))
        self.refresh()

    def stage_finished(self, stage: str, halted: str | None) -> None:
        st = self.stages[stage]
        st.state = "halted" if halted else "done"
        if halted:
            self.halted = halted
        if self.in_flight == stage:
            self.in_flight = None
        self.refresh(force=True)

    def hosts_answered(self, outcomes: list[HostOutcome]) -> None:
        """A batch's answers: each host newly sent to the technician is an event automations can act on."""
        for o in outcomes:
            if o.result is Result.NEEDS_MEBX and o.host not in self._mebx_told:
                self._mebx_told.add(o.host)
                emit(self.ctx.inv.name, self.ctx.wave.name, "amt-migrate.host.needs-technician",
                     host=o.host, cause=o.cause.value if o.cause else None,
                     payload={"enter_suffix": self.ctx.cert_suffix, "detail": o.detail})

    # -- the snapshot and the artifact
    def snapshot(self) -> Snapshot:
        snap = take_snapshot(self.ctx, self.kind, self.stages, self.in_flight, self.halted)
        if self.forecast:
            total = sum(snap.by_status.values())
            done = sum(snap.by_status.get(k, 0) for k in DONE)
            for share in (0.5, 0.9, 1.0):
                if total and done >= math.ceil(share * total - 1e-9):
                    self.reached.setdefault(share, snap.at)
            snap.forecast, snap.reached = self.forecast, dict(self.reached)
        return snap

    def refresh(self, force: bool = False) -> Snapshot | None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < MIN_INTERVAL:
                return None
            self._last = now
        snap = self._safely("snapshot", self.snapshot)
        if snap is None:
            return None
        for listener in list(LISTENERS):
            self._safely("listener", lambda: listener(snap))
        if self.ctx.flow_run_id:
            md = live_markdown(snap)
            desc = f"{snap.wave} ({snap.kind}): live view, updated per batch"
            if self._live_id is None:
                self._live_id = self._safely("live artifact", lambda: self._create("markdown", live_key(self.ctx),
                                                                                   md, desc))
            else:
                self._safely("live artifact update", lambda: self._update(self._live_id, md, desc))
        return snap


def take_snapshot(ctx: WaveContext, kind: str, stages: dict[str, StageProgress], in_flight: str | None,
                  halted: str | None = None, now: datetime | None = None) -> Snapshot:
    """Counts from one GROUP BY; names and windows only of hosts not done and not pending (cheap early on)."""
    store, wave = ctx.store, ctx.wave.name
    counts = store.status_cause_counts(wave)
    by_status: dict[str, int] = {}
    for (status, _), n in counts.items():
        by_status[status] = by_status.get(status, 0) + n
    waiting = [s for s in STATUS_ORDER if s not in DONE and s != Status.PENDING]
    records = store.hosts(wave, status=waiting)
    by_cause: dict[str, dict] = {}
    for r in records:
        g = by_cause.setdefault(f"{r.status}/{r.cause or ''}", {
            "status": r.status, "cause": r.cause or "", "count": 0, "hosts": [],
            "next": next_action(r.status, r.cause, ctx.cert_suffix)})
        g["count"] += 1
        if len(g["hosts"]) < EXAMPLES:
            g["hosts"].append(r.host)
    soon = sorted((r for r in records if r.window_closes_at), key=lambda r: r.window_closes_at)[:SOONEST]
    return Snapshot(ctx.inv.name, wave, kind, in_flight, {k: StageProgress(v.done, v.total, v.state)
                                                          for k, v in stages.items()},
                    by_status, dict(sorted(by_cause.items(), key=lambda kv: -kv[1]["count"])),
                    [{"host": r.host, "status": r.status, "cause": r.cause or "", "closes_at": r.window_closes_at}
                     for r in soon], halted, now or datetime.now(timezone.utc))


def time_left(closes_at: datetime, now: datetime) -> str:
    secs = int((closes_at - now).total_seconds())
    if secs <= 0:
        return "closed"
    h, rem = divmod(secs, 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min {rem % 60:02d} s"


def live_markdown(s: Snapshot) -> str:
    """The wave's page, in the order an operator asks: where is it, how many, why, what closes next."""
    total = sum(s.by_status.values())
    done = sum(s.by_status.get(k, 0) for k in DONE)
    head = (f"halted: {s.halted}" if s.halted else
            f"{STAGE_TITLES[s.in_flight]} in flight" if s.in_flight else "between stages / finished")
    lines = [f"# {s.inventory} / {s.wave} ({s.kind}): {head}", "",
             f"**{done} of {total} hosts done** ({s.by_status.get('provisioned', 0)} provisioned, "
             f"{s.by_status.get('unsupported', 0)} unsupported) · updated {s.at:%Y-%m-%d %H:%M:%S} UTC", "",
             "| stage | progress | state |", "|---|---|---|"]
    for stage, p in s.stages.items():
        pct = f" ({100 * p.done // p.total}%)" if p.total else ""
        lines.append(f"| {STAGE_TITLES[stage]} | {p.done} of {p.total} hosts{pct} | "
                     f"{'**' + p.state + '**' if stage == s.in_flight else p.state} |")
    lines += ["", "## Hosts per status", "", "| status | hosts |", "|---|---|"]
    lines += [f"| {k} | {s.by_status[k]} |" for k in STATUS_ORDER if s.by_status.get(k)]
    if s.by_cause:
        lines += ["", "## Not finished: cause and next action", "",
                  "| status | cause | hosts | next action | e.g. |", "|---|---|---|---|---|"]
        for g in s.by_cause.values():
            more = f" and {g['count'] - len(g['hosts'])} more" if g["count"] > len(g["hosts"]) else ""
            lines.append(f"| {g['status']} | {g['cause'] or '-'} | {g['count']} | {g['next']} | "
                         f"{', '.join(g['hosts'])}{more} |")
    from flows.forecast_view import live_lines

    lines += live_lines(s.forecast, s.reached)
    if s.soonest:
        lines += ["", "## Windows closing soonest (hosts not finished)", "",
                  "| host | status | cause | closes (UTC) | time left |", "|---|---|---|---|---|"]
        lines += [f"| {w['host']} | {w['status']} | {w['cause'] or '-'} | {w['closes_at']:%Y-%m-%d %H:%M} | "
                  f"{time_left(w['closes_at'], s.at)} |" for w in s.soonest]
    return "\n".join(lines) + "\n"


# -- events ------------------------------------------------------------------------------------------

def emit(inventory: str, wave: str, event: str, *, host: str | None = None, cause: str | None = None,
         payload: dict | None = None, related_hosts: list[str] | None = None) -> None:
    """One Prefect event; the wave (and host) are resources so an automation can match on their labels."""
    try:
        from prefect.events import emit_event

        related = [{**wave_resource(inventory, wave), "prefect.resource.role": "wave"}]
        if host:
            resource = {"prefect.resource.id": f"amt-migrate.host.{host}", "prefect.resource.name": host,
                        "amt-migrate.host": host, "amt-migrate.wave": wave, "amt-migrate.inventory": inventory}
        else:
            resource = wave_resource(inventory, wave)
            related = []
        if cause:
            resource["amt-migrate.cause"] = cause
        related += [{"prefect.resource.id": f"amt-migrate.host.{h}", "prefect.resource.role": "host"}
                    for h in (related_hosts or [])]
        emit_event(event=event, resource=resource, related=related or None, payload=payload or {})
    except Exception as exc:  # noqa: BLE001 - an event that cannot be sent never fails the wave
        log.warning("event %s not sent: %s", event, exc)


def windows_closing(ctx: WaveContext, within: timedelta = WINDOW_WARNING) -> None:
    """One wave event naming the unfinished hosts whose window closes within `within` (first 50 as resources)."""
    now = datetime.now(timezone.utc)
    unfinished = [s for s in STATUS_ORDER if s not in DONE]
    closing = sorted((r for r in ctx.store.hosts(ctx.wave.name, status=unfinished)
                      if r.window_closes_at and now < r.window_closes_at <= now + within),
                     key=lambda r: r.window_closes_at)
    if closing:
        emit(ctx.inv.name, ctx.wave.name, "amt-migrate.wave.windows-closing",
             payload={"hosts": len(closing), "within_hours": within.total_seconds() / 3600,
                      "soonest": closing[0].window_closes_at.isoformat(),
                      "first": [{"host": r.host, "status": r.status, "cause": r.cause,
                                 "closes_at": r.window_closes_at.isoformat()} for r in closing[:50]]},
             related_hosts=[r.host for r in closing[:50]])


# -- one view per run ----------------------------------------------------------------------------------

_views: dict[int, WaveView] = {}


def open_view(ctx: WaveContext) -> WaveView:
    view = _views[id(ctx)] = WaveView(ctx)
    if ctx.restrict is None:  # a shard's parent shows the wave's forecast, not each shard
        from flows.forecast_view import start_forecast

        view.forecast = view._safely("forecast", lambda: start_forecast(ctx.inv, ctx.wave.name, ctx.store))
    emit(ctx.inv.name, ctx.wave.name, "amt-migrate.wave.started",
         payload={"kind": view.kind, "hosts": len(ctx.selected) if ctx.selected is not None else len(ctx.hosts_by_name),
                  "flow_run_id": ctx.flow_run_id, "from_stage": ctx.from_stage})
    return view


def view_for(ctx: WaveContext) -> WaveView:
    """The run's view; a context built outside migrate_wave (a test, a shard) gets one on first use."""
    return _views.get(id(ctx)) or _views.setdefault(id(ctx), WaveView(ctx))


def close_view(ctx: WaveContext) -> None:
    _views.pop(id(ctx), None)


# -- the wave's final state, in words ---------------------------------------------------------------

def needs_someone(summary: dict) -> bool:
    """Hosts left failed or waiting for a technician: the run did all it could, but people must act, so its
    final state is not green (Prefect colours by type; the name still says "Completed with ...")."""
    by = summary["by_status"]
    return bool(by.get("failed", 0) + by.get("remediation_failed", 0) + by.get("needs_mebx", 0))


def state_words(summary: dict, *, halted: str | None, note: str | None) -> tuple[str, str]:
    """(state name, message): "Completed" only when every host is done; otherwise the name says what is
    left ("Completed with 8 hosts for a technician", "Completed with 17 failed, 8 for a technician")."""
    by = summary["by_status"]
    total = summary["total"]
    provisioned = by.get("provisioned", 0)
    failed = by.get("failed", 0) + by.get("remediation_failed", 0)
    mebx = by.get("needs_mebx", 0)
    waiting = by.get("pending", 0) + by.get("remediating", 0) + by.get("remediated", 0)
    parts = [f"{provisioned} of {total} provisioned"]
    if note:
        parts.append(note)
    if by.get("unsupported"):
        parts.append(f"{by['unsupported']} unsupported")
    if mebx:
        parts.append(f"{mebx} for a technician")
    if failed:
        parts.append(f"{failed} failed")
    causes = summary.get("by_cause") or {}
    if causes:
        parts.append("causes: " + ", ".join(f"{k} {v}" for k, v in sorted(causes.items(), key=lambda kv: -kv[1])))
    if waiting:
        parts.append(f"{waiting} not finished (pending/remediated)")
    if halted:
        return "Halted", f"halted: {halted}; " + "; ".join(parts)
    left = [f"{failed} failed" if failed else "", f"{mebx} for a technician" if mebx else "",
            f"{waiting} waiting" if waiting else ""]
    left = [x for x in left if x]
    if not left:
        return "Completed", "; ".join(parts)
    if left == [f"{mebx} for a technician"]:
        name = f"Completed with {mebx} host{'s' if mebx != 1 else ''} for a technician"
    else:
        name = "Completed with " + ", ".join(left)
    return name, "; ".join(parts)


def wave_finished(inventory: str, wave: str, name: str, message: str, summary: dict, halted: str | None) -> None:
    emit(inventory, wave, "amt-migrate.wave.halted" if halted else "amt-migrate.wave.finished",
         payload={"state": name, "message": message, "by_status": summary["by_status"],
                  "by_cause": summary.get("by_cause", {}), "total": summary["total"], "halted": halted})
