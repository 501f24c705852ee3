"""The backfill job: reload a window of days of the incremental tables, then rebuild the models."""

from __future__ import annotations

from datetime import date, datetime, time

from prefect import flow

from flows.elt import elt
from flows.extract_load import DEFAULT_DATA_DIR
from pipeline.alerting import FLOW_HOOKS
from pipeline.loading import LoadWindow, TableLoad
from pipeline.transform_result import TransformResult


def window_of_days(first_day: date, last_day: date) -> LoadWindow:
    """Both days inclusive, from midnight of the first to the last instant of the last."""
    if last_day < first_day:
        raise ValueError(
            f"backfill window: last_day {last_day} is before first_day {first_day}; swap them"
        )
    return LoadWindow(datetime.combine(first_day, time.min), datetime.combine(last_day, time.max))


@flow(name="backfill", log_prints=True, **FLOW_HOOKS)
async def backfill(
    first_day: date,
    last_day: date,
    environment: str = "local",
    data_dir: str = DEFAULT_DATA_DIR,
    dataset: str = "jaffle_shop",
) -> tuple[list[TableLoad], TransformResult]:
    """Reload the incremental tables' rows of `first_day`..`last_day` (inclusive), then dbt."""
    window = window_of_days(first_day, last_day)
    return await elt(
        environment=environment,
        data_dir=data_dir,
        backfill_start=window.since,
        backfill_end=window.until,
        dataset=dataset,
    )
