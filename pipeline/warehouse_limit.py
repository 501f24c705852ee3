"""One writer at a time per environment's warehouse: a Prefect global concurrency limit.

The hourly load, the daily ELT and a backfill write the same raw tables and models; each flow
that loads or transforms holds the environment's one slot while it writes. Setup creates the
limit; a run without it (a local run before setup) warns in its log and goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

WRITERS_AT_ONCE = 1


def warehouse_limit_name(environment: str) -> str:
    """The global concurrency limit that the environment's writing flows share."""
    return f"elt-warehouse-{environment}"


@contextmanager
def writing_to_the_warehouse(environment: str) -> Iterator[None]:
    """Hold the environment's warehouse slot, waiting while another run holds it."""
    # The lease is renewed while held and expires if the process dies, freeing the slot.
    with concurrency(warehouse_limit_name(environment), occupy=1):
        yield


def ensure_warehouse_limit(environment: str) -> str:
    """Create the environment's limit when missing; an existing one (maybe changed in the UI)
    is left as it is. Returns what was done."""
    name = warehouse_limit_name(environment)
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=WRITERS_AT_ONCE)
            )
            return f"{name} created ({WRITERS_AT_ONCE} writer at a time)"
    return f"{name} kept (limit {existing.limit}, active: {existing.active})"
