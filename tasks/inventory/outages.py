"""``outages:`` in the inventory: how long a run rides through its own infrastructure going away.

    outages:
      state_retry_for: 2m          # the state database away (restart, failover): reads and writes wait this long
      provisioning_retry_for: 2m   # the provisioning server unreachable: a batch is retried this long
      lease_ttl: 15m               # a worker lost with its hosts leased: another takes them after this

Past a bound the run stops (exit 2) naming what went away, leaving every host as it stood; `run` again
continues each host from where the store has it. docs/postgresql.md and docs/prefect.md say what
survives what.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator

from tasks.rules.durations import format_duration, parse_duration

_Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]

STATE_RETRY_FOR = timedelta(minutes=2)
PROVISIONING_RETRY_FOR = timedelta(minutes=2)
LEASE_TTL = timedelta(minutes=15)


class Outages(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state_retry_for: _Duration = STATE_RETRY_FOR
    provisioning_retry_for: _Duration = PROVISIONING_RETRY_FOR
    lease_ttl: _Duration = LEASE_TTL

    @model_validator(mode="after")
    def _bounds(self):
        for name in ("state_retry_for", "provisioning_retry_for"):
            if getattr(self, name) < timedelta(seconds=1):
                raise ValueError(f"{name} must be at least 1s")
        # a live worker renews its leases every third of the TTL: shorter than a few seconds and a slow
        # renewal would hand a live worker's hosts to another
        if self.lease_ttl < timedelta(seconds=3):
            raise ValueError("lease_ttl must be at least 3s")
        return self
