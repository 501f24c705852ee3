"""The transform flow: the environment's dbt (Core or Cloud) over the raw tables."""

from __future__ import annotations

import asyncio

from prefect import flow

from blocks import DbtCoreTransform, load_environment
from pipeline.alerting import FLOW_HOOKS
from pipeline.dbt_results import publish_transform_result
from pipeline.transform_result import TransformError, TransformResult
from pipeline.warehouse_limit import writing_to_the_warehouse


# One retry: dbt Core's re-runs only the nodes that failed or were skipped (`dbt retry`).
# Async for how Prefect ends the run (as `elt`): no wait for the heartbeat thread's 1 s sleep.
@flow(name="transform", log_prints=True, retries=1, **FLOW_HOOKS)
async def transform(
    environment: str = "local", loaded: list[str] | None = None, full_refresh: bool = False
) -> TransformResult:
    """Run the environment's transform block. dbt Core builds what the raw tables in `loaded`
    feed (all of it when `loaded` is None or the project changed); a dbt Cloud job builds all."""
    settings = load_environment(environment)
    transform_block = settings.transform
    result: TransformResult | None = None
    try:
        with writing_to_the_warehouse(environment):
            if isinstance(transform_block, DbtCoreTransform):
                result = transform_block.run(settings.warehouse, loaded, full_refresh)
            else:
                result = transform_block.run(settings.warehouse)
        return result
    except TransformError as failed:
        result = failed.result
        raise
    finally:
        if result is not None:  # published on failure too: the table lists the failures first
            await publish_transform_result(result)


if __name__ == "__main__":
    asyncio.run(transform())
