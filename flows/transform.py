"""The transform flow: the environment's dbt (Core or Cloud) over the raw tables."""

from __future__ import annotations

from prefect import flow

from blocks import load_environment
from pipeline.alerting import FLOW_HOOKS
from pipeline.dbt_results import publish_transform_result
from pipeline.transform_result import TransformError, TransformResult
from pipeline.warehouse_limit import writing_to_the_warehouse


@flow(name="transform", log_prints=True, **FLOW_HOOKS)
def transform(environment: str = "local") -> TransformResult:
    """Run the environment's transform block (dbt Core in-process, or a dbt Cloud job)."""
    settings = load_environment(environment)
    transform_block = settings.transform
    result: TransformResult | None = None
    try:
        with writing_to_the_warehouse(environment):
            result = transform_block.run(settings.warehouse)
        return result
    except TransformError as failed:
        result = failed.result
        raise
    finally:
        if result is not None:  # published on failure too: the table lists the failures first
            publish_transform_result(result)


if __name__ == "__main__":
    transform()
