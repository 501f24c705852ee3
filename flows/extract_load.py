"""The extract-load flow: every source into the raw schema, atomically and incrementally."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime

from prefect import flow, task, unmapped
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from blocks import Warehouse, load_environment
from pipeline import datasets
from pipeline.alerting import FLOW_HOOKS
from pipeline.loading import (
    LoadWindow,
    TableLoad,
    load_source,
    raise_if_any_failed,
    retry_if_transient,
    table_results,
    unchanged_loads,
)
from pipeline.sources import Source
from pipeline.summaries import publish_loads
from pipeline.warehouse_limit import writing_to_the_warehouse

DEFAULT_DATA_DIR = "data/jaffle"


@task(
    name="load-table",
    task_run_name="load {source.name}",
    cache_policy=NONE,
    # A load is idempotent: a dropped connection or an unreachable store is retried after
    # 10, 20 and 40 s (+/- jitter); bad data is not.
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
)
def load_table(
    warehouse: Warehouse,
    source: Source,
    full_refresh: bool,
    backfill: LoadWindow | None,
    batch_rows: int,
    own_connection: bool = False,
    run_started: datetime | None = None,
) -> TableLoad:
    """Load one table over the flow's connection, or over its own when mapped."""
    with warehouse.fresh() if own_connection else nullcontext(warehouse) as into:
        return load_source(into, source, full_refresh=full_refresh, backfill=backfill,
                           batch_rows=batch_rows, run_started=run_started)  # fmt: skip


@flow(name="extract-load", log_prints=True, **FLOW_HOOKS)
def extract_load(
    environment: str = "local",
    data_dir: str = DEFAULT_DATA_DIR,
    full_refresh: bool = False,
    backfill_start: datetime | None = None,
    backfill_end: datetime | None = None,
    parallel: bool = False,
    batch_rows: int = 250_000,
    dataset: str = "jaffle_shop",
) -> list[TableLoad]:
    """Load every table of `dataset` from under `data_dir`; with a backfill window, reload
    just that cursor range."""
    sources = datasets.dataset(dataset).sources(data_dir)
    warehouse = load_environment(environment).warehouse
    backfill = LoadWindow(backfill_start, backfill_end) if backfill_start or backfill_end else None
    # Cursor values after this (plus each source's tolerance) can't be trusted.
    started = datetime.now(UTC).replace(tzinfo=None)
    args = (full_refresh, backfill, batch_rows)
    with writing_to_the_warehouse(environment):
        with warehouse:
            # Tables whose files are as last loaded need no task run (most of a no-change run).
            skipped = unchanged_loads(warehouse, sources, full_refresh, backfill, started)
            changed = [source for source in sources if source.name not in skipped]
            if not parallel:
                states = [
                    load_table(warehouse, source, *args, run_started=started, return_state=True)
                    for source in changed
                ]
        if parallel:
            futures = load_table.map(unmapped(warehouse), changed, *map(unmapped, args),
                                     own_connection=True, run_started=started)  # fmt: skip
            futures.wait()
            states = [future.state for future in futures]
    results = table_results(sources, skipped, zip(changed, states, strict=True))
    publish_loads(results)
    raise_if_any_failed(results)
    return results


if __name__ == "__main__":
    extract_load()
