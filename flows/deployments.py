"""A Prefect deployment per wave on a process work pool, scheduled at the wave's `start`.

Worker-based deployments outlive the process that made them (`flow.serve` pauses its schedules
when its process stops), so leads schedule waves once and operators see them as scheduled runs.

The code is not built or pushed anywhere: each deployment's pull step is `set_working_directory`
to this checkout, so a process worker on this machine (started from this project's virtualenv)
runs `flows/migrate.py:migrate_wave` from here, and reads the inventory by its absolute path.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from tasks.inventory.model import Inventory

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = "flows/migrate.py:migrate_wave"
FLOW_NAME = "migrate-wave"
SCHEDULE_SLUG = "wave-start"  # the one schedule a wave deployment has; others are removed


def deployment_name(inv: Inventory, wave: str) -> str:
    return f"{inv.name}-{wave}"


def full_name(inv: Inventory, wave: str) -> str:
    """What `run_deployment` and `prefect deployment run` take."""
    return f"{FLOW_NAME}/{deployment_name(inv, wave)}"


def one_shot_rrule(start: datetime) -> str:
    """A schedule that fires once, at the wave's start (UTC)."""
    return f"DTSTART:{start.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}\nRRULE:FREQ=DAILY;COUNT=1"


def ensure_process_pool(pool: str) -> None:
    """Create the work pool as a process pool; refuse to deploy onto a pool of another type."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:
            existing = client.read_work_pool(pool)
            if existing.type != "process":
                raise ValueError(f"work pool {pool!r} is a {existing.type!r} pool; waves run on a process pool "
                                 f"(`prefect work-pool create {pool}-process --type process`, then --pool)") from None


def _set_schedule(deployment_id, start: datetime | None) -> None:
    """Exactly the wave's schedule, or none; the inventory is the truth, a schedule added by hand goes.

    Set through a deployment update (not the schedule endpoints), which marks the deployment as
    updated, so the scheduler makes the run within seconds rather than at its next minute loop. An
    update leaves schedules it does not name alone (slug mode), so the others are deleted one by one,
    each with its scheduled runs.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleUpdate, DeploymentUpdate
    from prefect.client.schemas.schedules import RRuleSchedule

    with get_client(sync_client=True) as client:
        if start:
            client.update_deployment(deployment_id, DeploymentUpdate(schedules=[DeploymentScheduleUpdate(
                schedule=RRuleSchedule(rrule=one_shot_rrule(start), timezone="UTC"), active=True,
                slug=SCHEDULE_SLUG)]))
        for s in client.read_deployment(deployment_id).schedules:
            if not start or s.slug != SCHEDULE_SLUG:
                client.delete_deployment_schedule(deployment_id, s.id)


def register_deployments(inv: Inventory, inventory_path: Path, pool: str, *, waves: list[str] | None = None,
                         source: Path = PROJECT_ROOT) -> list[tuple[str, str | None]]:
    """Create or update one deployment per wave; returns (name, what its schedule is, or None).

    Running it again after editing the inventory moves a wave's schedule to its new `start`, and
    removes it (with its scheduled run) when the wave no longer has one.
    """
    from prefect import Flow

    if waves:
        unknown = sorted(set(waves) - {w.name for w in inv.waves})
        if unknown:
            raise ValueError(f"no wave {', '.join(unknown)} in {inv.name} (waves: {', '.join(w.name for w in inv.waves)})")
    ensure_process_pool(pool)
    flow = Flow.from_source(source=str(source), entrypoint=ENTRYPOINT)
    inventory = str(Path(inventory_path).resolve())
    now = datetime.now(timezone.utc)
    made = []
    for w in inv.waves:
        if waves and w.name not in waves:
            continue
        name = deployment_name(inv, w.name)
        deployment = flow.to_deployment(
            name=name, work_pool_name=pool,
            parameters={"inventory": inventory, "wave": w.name, "inventory_name": inv.name},
            tags=[f"wave:{w.name}", f"inventory:{inv.name}"],
            description=f"{inv.name}: wave {w.name} ({len(inv.wave_hosts(w))} hosts) from {inventory}",
        )
        _set_schedule(deployment.apply(work_pool_name=pool), w.start)
        when = None
        if w.start:
            when = w.start.astimezone(timezone.utc).isoformat()
            if w.start <= now:
                when += " — in the past: no run will be created (start it with `prefect deployment run`)"
        made.append((name, when))
    return made
