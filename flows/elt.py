"""The main job: extract-load, then transform, then one summary of the whole run."""

from __future__ import annotations

import asyncio
from datetime import datetime

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact

from flows.extract_load import DEFAULT_DATA_DIR, extract_load
from flows.transform import transform
from pipeline.alerting import FLOW_HOOKS
from pipeline.build_plan import loaded_tables
from pipeline.heartbeat import sharing_the_callers_heartbeat
from pipeline.loading import TableLoad
from pipeline.summaries import elt_markdown
from pipeline.transform_result import TransformResult


# Async for how Prefect ends the run: its sync engine waits for the heartbeat thread's 1 s sleep
# to end (up to 1 s, most of a run with nothing to do); the async engine lets it end by itself.
@flow(name="elt", log_prints=True, **FLOW_HOOKS)
async def elt(
    environment: str = "local",
    data_dir: str = DEFAULT_DATA_DIR,
    full_refresh: bool = False,
    backfill_start: datetime | None = None,
    backfill_end: datetime | None = None,
    dataset: str = "jaffle_shop",
) -> tuple[list[TableLoad], TransformResult]:
    """Load every source into the warehouse, then build and test the dbt project on it."""
    with sharing_the_callers_heartbeat():
        loads = extract_load(
            environment=environment,
            data_dir=data_dir,
            full_refresh=full_refresh,
            backfill_start=backfill_start,
            backfill_end=backfill_end,
            dataset=dataset,
        )
        # dbt builds only what the tables that received rows feed (everything on a full refresh).
        built = await transform(environment, sorted(loaded_tables(loads)), full_refresh)
    await acreate_markdown_artifact(key="elt-summary", markdown=elt_markdown(loads, built))
    return loads, built


if __name__ == "__main__":
    asyncio.run(elt())
