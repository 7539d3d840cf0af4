"""A Prefect deployment per wave on a process work pool, scheduled at the wave's `start`.

Worker-based deployments outlive the process that made them (`flow.serve` pauses its schedules
when its process stops), so leads schedule waves once and operators see them as scheduled runs.
"""

from __future__ import annotations

from pathlib import Path

from tasks.inventory import Inventory

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = "flows/migrate.py:migrate_wave"


def deployment_name(inv: Inventory, wave: str) -> str:
    return f"{inv.name}-{wave}"


def one_shot_rrule(start) -> str:
    """A schedule that fires once, at the wave's start."""
    return f"DTSTART:{start.strftime('%Y%m%dT%H%M%SZ')}\nRRULE:FREQ=DAILY;COUNT=1"


def ensure_process_pool(pool: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:
            pass


def register_deployments(inv: Inventory, inventory_path: Path, pool: str, *, waves: list[str] | None = None,
                         source: Path = PROJECT_ROOT) -> list[tuple[str, str | None]]:
    """Create or update one deployment per wave; returns (name, start or None)."""
    from datetime import timezone

    from prefect import Flow
    from prefect.schedules import RRule

    ensure_process_pool(pool)
    flow = Flow.from_source(source=str(source), entrypoint=ENTRYPOINT)
    made = []
    for w in inv.waves:
        if waves and w.name not in waves:
            continue
        schedules = [RRule(one_shot_rrule(w.start.astimezone(timezone.utc)), timezone="UTC")] if w.start else []
        name = deployment_name(inv, w.name)
        flow.deploy(
            name=name, work_pool_name=pool, build=False, push=False, schedules=schedules,
            parameters={"inventory": str(Path(inventory_path).resolve()), "wave": w.name, "inventory_name": inv.name},
            tags=[f"wave:{w.name}", f"inventory:{inv.name}"],
            description=f"{inv.name}: wave {w.name} ({len(inv.wave_hosts(w))} hosts)",
            print_next_steps=False, ignore_warnings=True,
        )
        made.append((name, w.start.isoformat() if w.start else None))
    return made
