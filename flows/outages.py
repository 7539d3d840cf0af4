"""A wave's own infrastructure going away mid-run: the batches' retry policy, the run's last word, and the
Prefect runs an earlier outage orphaned.

- **Provisioning server unreachable** (no answer at all, as against a 5xx for one host): the batch is retried
  by Prefect with backoff for `outages.provisioning_retry_for`; past that the stage stops handing out hosts
  and the run ends "Stopped: provisioning server unreachable" (exit 2). Hosts keep their status and cause.
- **State database away**: the store itself retries for `outages.state_retry_for` (tasks/store/outage.py);
  past that the run ends "Stopped: state database unavailable" (exit 2), every host as last recorded.
- **Prefect server away**: Prefect's client retries each API call (PREFECT_CLIENT_MAX_RETRIES, default 5,
  2^n s apart: about a minute; a refused connection is retried only once the client has connected before,
  prefect/client/base.py in 3.9). A run that outlives that budget fails; the store is untouched by it. A flow
  run whose process died with its server away stays "Running" on the server: Prefect OSS marks such a run
  Crashed only through an automation fed by flow-run heartbeats (docs.prefect.io/v3/advanced/
  detect-zombie-flows; Prefect Cloud has it built in), which a site may not have. So every run marks itself in
  the state store and beats that mark with its leases; the next run of the wave marks every earlier run whose
  process is gone and which the server still shows Running as Crashed, saying so (`mark_orphaned_runs`).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from tasks.steps.provision import TransientHosts
from tasks.store.state import StateUnavailable

log = logging.getLogger("amt_migrate")

STOPPED = "Stopped: "  # the start of the final state's name when the run's own infrastructure went away
STATE_DB_DOWN = STOPPED + "state database unavailable"
PROVISIONING_DOWN = STOPPED + "provisioning server unreachable"

FIRST_DELAYS = (2, 10)  # a batch whose hosts met a 5xx: two retries, as before (Prefect's retry_delay_seconds)
LATER_DELAY_STEPS = (20, 30)  # then, while the server does not answer at all: 20 s, then every 30 s


def state_db_failed(exc: StateUnavailable):
    """A task or stage's Failed state for the state database gone: returned, not raised, so Prefect neither
    retries it nor logs a traceback per batch; the wave's flow turns it into its last word (flows/migrate.py)."""
    from prefect.states import Failed

    return Failed(name=STATE_DB_DOWN, message=str(exc), data=exc)


def stops_when_state_is_lost(fn):
    """For a batch task or stage flow body: the state database gone past its bound ends it with
    state_db_failed instead of an exception."""
    import functools

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StateUnavailable as exc:
            return state_db_failed(exc)

    return run


def retry_delays(retry_for: timedelta) -> list[float]:
    """Delays between a batch's tries, adding up to `retry_for` (the last one cut to fit), at least two."""
    budget = max(retry_for.total_seconds(), 1.0)
    delays: list[float] = []
    steps = list(FIRST_DELAYS) + list(LATER_DELAY_STEPS)
    while sum(delays) < budget:
        step = steps[min(len(delays), len(steps) - 1)]
        delays.append(min(step, budget - sum(delays)))
    while len(delays) < len(FIRST_DELAYS):
        delays.append(FIRST_DELAYS[len(delays)])
    return delays


def _retry_condition(task, task_run, state) -> bool:
    """Prefect asks this after a failed try. The state database gone: never (the run stops). The provisioning
    server not answering: yes, up to the retries the bound allows. Anything else (a 5xx for some hosts, an
    error of Prefect's own): the first two retries only."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - unreadable: treat as any other failure
            exc = None
    if isinstance(exc, StateUnavailable):
        return False
    if isinstance(exc, TransientHosts) and exc.unreachable:
        return True
    return task_run.run_count <= len(FIRST_DELAYS)


def batch_retries(retry_for: timedelta) -> dict:
    """Options for a batch task run (`task.with_options(**...)`)."""
    delays = retry_delays(retry_for)
    return dict(retries=len(delays), retry_delay_seconds=delays, retry_jitter_factor=0.5,
                retry_condition_fn=_retry_condition)


def provisioning_outage(url: str | None, retry_for: timedelta, hosts: list[str]) -> str:
    return (f"provisioning server {url or '(provisioning.url)'} did not answer for "
            f"{_human(retry_for)} (outages.provisioning_retry_for); {len(hosts)} host(s) met it "
            f"({', '.join(hosts[:5])}{' …' if len(hosts) > 5 else ''}) and keep their status and cause")


def _human(d: timedelta) -> str:
    s = d.total_seconds()
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def stopped_message(what: str, inventory: str, wave: str) -> str:
    return (f"{what}. Every host is as the state store last recorded it; when it is back: "
            f"`amt-migrate run {inventory} --wave {wave}` continues each host from where it stands")


def mark_orphaned_runs(ctx) -> list[str]:
    """Earlier runs of this wave whose process is gone (tasks/steps/leases.py gone_runs) and that the Prefect
    server still shows Running/Pending: set them Crashed, saying what happened; their marks are dropped.
    Returns their names. Never fails the run (the server may not know them, or not answer)."""
    from tasks.steps.leases import RUN_MARK, gone_runs

    store, wave = ctx.store, ctx.wave.name
    gone = gone_runs(store, wave, ctx.flow_run_id, ctx.lease_ttl)
    if not gone:
        return []
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    marked = []
    try:
        with get_client(sync_client=True) as client:
            for run_id in gone:
                try:
                    fr = client.read_flow_run(UUID(run_id))
                except Exception:  # noqa: BLE001 - a run of another server, or deleted
                    fr = None
                if fr is not None and fr.state is not None and not fr.state.is_final():
                    client.set_flow_run_state(fr.id, Crashed(message=(
                        f"orphaned: this run's process went away (its Prefect server or machine was lost) before it "
                        f"could report an end; flow run {ctx.flow_run_id} continued the wave from the state "
                        f"store, where every host's progress is recorded")), force=True)
                    marked.append(fr.name)
                store.clear_wave_mark(wave, RUN_MARK + run_id)
    except StateUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - marking is for the operator's view: never fail the wave for it
        log.warning("could not mark earlier runs of %s as crashed: %s", wave, exc)
        return marked
    if marked:
        log.warning("earlier run(s) of %s left Running by an outage, now marked Crashed: %s", wave, ", ".join(marked))
    return marked


def prefect_api_lost(exc: BaseException) -> str | None:
    """A run that raised out of Prefect's engine: was it because its Prefect server went away? Asks the API's
    /health (PREFECT_API_URL) once; returns what to tell the operator, or None (the server answers: not an
    outage, let the error be seen). The embedded server (no PREFECT_API_URL) lives in this process: never."""
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    if not api:
        return None
    import httpx

    try:
        if httpx.get(f"{api.rstrip('/')}/health", timeout=5).status_code < 500:
            return None
    except httpx.HTTPError:
        pass
    return (f"Prefect server {api} did not answer ({type(exc).__name__}: {str(exc)[:200]}) past the client's retries "
            f"(PREFECT_CLIENT_MAX_RETRIES); the run stopped")
