"""The extract-load flow: every source into the raw schema, atomically and incrementally."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime

from prefect import flow, task, unmapped
from prefect.cache_policies import NONE
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff

from blocks import Warehouse, load_environment
from pipeline import datasets
from pipeline.alerting import FLOW_HOOKS
from pipeline.loading import (
    LoadFacts,
    LoadWindow,
    TableLoad,
    check_sources,
    load_source,
    raise_if_any_failed,
    retry_if_transient,
    table_results,
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
    facts: LoadFacts | None,
    full_refresh: bool,
    backfill: LoadWindow | None,
    batch_rows: int,
    run_started: datetime,
    own_connection: bool = False,
) -> TableLoad:
    """Load one table over the flow's connection, or over its own when mapped, from the `facts`
    the flow gathered (a retry gathers them anew: a failed attempt can leave staging debris)."""
    known = facts if task_run.run_count <= 1 else None
    with warehouse.fresh() if own_connection else nullcontext(warehouse) as into:
        return load_source(into, source, full_refresh=full_refresh, backfill=backfill,
                           batch_rows=batch_rows, run_started=run_started, facts=known)  # fmt: skip


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
    """Load every table of `dataset` under `data_dir` (with a backfill window, just that range)."""
    sources = datasets.dataset(dataset).sources(data_dir)
    warehouse = load_environment(environment).warehouse
    backfill = LoadWindow(backfill_start, backfill_end) if backfill_start or backfill_end else None
    started = datetime.now(UTC).replace(tzinfo=None)  # later cursor values can't be trusted
    args = (full_refresh, backfill, batch_rows, started)
    with writing_to_the_warehouse(environment):
        with warehouse:
            # Tables whose files are as last loaded need no task run (most of a no-change run).
            checked = check_sources(warehouse, sources, full_refresh, backfill, started)
            if not parallel:
                states = [
                    load_table(warehouse, source, facts, *args, return_state=True)
                    for source, facts in zip(checked.changed, checked.facts, strict=True)
                ]
        if parallel:
            futures = load_table.map(unmapped(warehouse), checked.changed, checked.facts,
                                     *map(unmapped, args), own_connection=True)  # fmt: skip
            futures.wait()
            states = [future.state for future in futures]
    results = table_results(sources, checked.skipped, zip(checked.changed, states, strict=True))
    publish_loads(results)
    raise_if_any_failed(results)
    return results


if __name__ == "__main__":
    extract_load()
