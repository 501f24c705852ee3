"""The main job: extract-load, then transform, then one summary of the whole run."""

from __future__ import annotations

from datetime import datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from elt.alerting import FLOW_HOOKS
from elt.loading import TableLoad
from elt.transform_result import TransformResult
from flows.extract_load import DEFAULT_DATA_DIR, extract_load
from flows.transform import transform


@flow(name="elt", log_prints=True, **FLOW_HOOKS)
def elt(
    environment: str = "local",
    data_dir: str = DEFAULT_DATA_DIR,
    full_refresh: bool = False,
    backfill_start: datetime | None = None,
    backfill_end: datetime | None = None,
    dataset: str = "jaffle_shop",
) -> tuple[list[TableLoad], TransformResult]:
    """Load every source into the warehouse, then build and test the dbt project on it."""
    loads = extract_load(
        environment=environment,
        data_dir=data_dir,
        full_refresh=full_refresh,
        backfill_start=backfill_start,
        backfill_end=backfill_end,
        dataset=dataset,
    )
    built = transform(environment=environment)
    create_markdown_artifact(key="elt-summary", markdown=summary_markdown(loads, built))
    return loads, built


def summary_markdown(loads: list[TableLoad], built: TransformResult) -> str:
    """The run in a few lines: rows per table, models built, tests by outcome, timings."""
    rows_loaded = sum(load.inserted + load.updated for load in loads)
    lines = [
        "## ELT run",
        f"- Rows loaded: {rows_loaded:,} across {len(loads)} tables "
        f"in {sum(load.seconds for load in loads):.1f} s",
        f"- Transform ({built.runner}): {built.counts.get('models', 0)} models built, "
        f"{built.counts.get('tests_passed', 0)} tests passed, "
        f"{built.counts.get('tests_warned', 0)} warned, "
        f"{built.counts.get('tests_failed', 0)} failed",
    ]
    if built.run_url:
        lines.append(f"- [dbt Cloud run]({built.run_url})")
    lines += [
        "",
        "| table | mode | inserted | updated | watermark after |",
        "|---|---|--:|--:|---|",
    ]
    lines += [
        f"| {load.table} | {load.mode} | {load.inserted:,} | {load.updated:,} "
        f"| {load.watermark_after or '-'} |"
        for load in loads
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    elt()
