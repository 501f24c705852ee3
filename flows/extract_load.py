"""The extract-load flow: every source into the raw schema, atomically and incrementally."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.states import State

from blocks import Warehouse, load_environment
from elt import datasets
from elt.alerting import FLOW_HOOKS, alert_on_task_failure
from elt.loading import LoadWindow, TableLoad, describe_failure, load_source
from elt.sources import Source

DEFAULT_DATA_DIR = "data/jaffle"


class ExtractLoadError(RuntimeError):
    """One or more tables failed to load; the others were loaded."""


@task(
    name="load-table",
    task_run_name="load {source.name}",
    cache_policy=NONE,
    on_failure=[alert_on_task_failure],
)
def load_table(
    warehouse: Warehouse,
    source: Source,
    full_refresh: bool,
    backfill: LoadWindow | None,
    batch_rows: int,
    own_connection: bool = False,
) -> TableLoad:
    """Load one table over the flow's connection, or over its own when mapped."""
    if own_connection:
        with warehouse.fresh() as own:
            return load_source(
                own, source, full_refresh=full_refresh, backfill=backfill, batch_rows=batch_rows
            )
    return load_source(
        warehouse, source, full_refresh=full_refresh, backfill=backfill, batch_rows=batch_rows
    )


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
    args = (unmapped(full_refresh), unmapped(backfill), unmapped(batch_rows))
    if parallel:
        futures = load_table.map(unmapped(warehouse), sources, *args, own_connection=True)
        futures.wait()
        states = [future.state for future in futures]
    else:
        with warehouse:
            states = [
                load_table(warehouse, source, full_refresh, backfill, batch_rows, return_state=True)
                for source in sources
            ]
    results = [table_result(source, state) for source, state in zip(sources, states, strict=True)]
    create_markdown_artifact(
        key="extract-load-summary",
        markdown=summary_markdown(results),
        description="Rows and watermarks per table",
    )
    failed = [result for result in results if result.error]
    if failed:
        raise ExtractLoadError(
            f"{len(failed)} of {len(results)} tables failed to load (the others were loaded; "
            "failed tables are unchanged): " + " | ".join(result.error for result in failed)
        )
    return results


def table_result(source: Source, state: State) -> TableLoad:
    """The task's TableLoad, or a failed one carrying the reason."""
    if state.is_completed():
        return state.result()
    exc = state.result(raise_on_failure=False)
    reason = describe_failure(source, exc) if isinstance(exc, BaseException) else str(exc)
    return TableLoad(
        source.name, "full refresh" if source.cursor is None else "incremental", error=reason
    )


def summary_markdown(results: list[TableLoad]) -> str:
    """A Markdown table of what each table's load did."""
    lines = [
        "| table | mode | rows read | inserted | updated | watermark before | watermark after "
        "| seconds | status |",
        "|---|---|--:|--:|--:|---|---|--:|---|",
    ]
    for r in results:
        status = f"failed: {r.error}" if r.error else "ok"
        lines.append(
            f"| {r.table} | {r.mode} | {r.rows_read:,} | {r.inserted:,} | {r.updated:,} "
            f"| {r.watermark_before or '-'} | {r.watermark_after or '-'} | {r.seconds:.2f} "
            f"| {status.replace('|', '/')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    extract_load()
