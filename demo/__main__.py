"""`make demo`: generate the demo data, run the ELT locally, and say where to look.

A second run adds a week of new orders first, so it shows an incremental load and a dbt run
that rebuilds only what the new orders feed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

FIRST_DAYS, DAYS_PER_RERUN = 30, 7


class StageLinesOnly(logging.Filter):
    """Keep each task's `Finished in state Completed()`, the hooks' running/finished lines and
    the async engine's second link to each run off the console (the UI keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        if record.name == "prefect.task_runs":
            return False
        message = record.getMessage()
        if record.name == "prefect.engine" and message.startswith("View at "):
            return False  # the run's own logger prints the same link
        return not (message.startswith("Running hook ") or message.startswith("Hook '"))


def set_up_console() -> None:
    """Prefect's console format, colour only on a terminal, a line per stage."""
    if not sys.stdout.isatty():
        os.environ.setdefault("PREFECT_LOGGING_COLORS", "false")
    from prefect.logging.configuration import setup_logging

    # Before dbt is imported: its usage tracker calls logging.basicConfig(), which Prefect
    # would take for the user's own logging and then leave its console handler out.
    setup_logging()
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if not type(handler).__name__.startswith("APILog"):
                handler.addFilter(StageLinesOnly())


def next_dataset(data_dir: Path) -> tuple[int, bool]:
    """Days of data to generate now, and whether this is a rerun."""
    state = data_dir / "_demo.json"
    if state.exists():
        return json.loads(state.read_text())["days"] + DAYS_PER_RERUN, True
    return FIRST_DAYS, False


def main(data_dir: Path | None = None) -> int:
    set_up_console()
    from prefect.settings import PREFECT_UI_URL
    from prefect.states import State

    from blocks import DuckDBWarehouse, load_environment
    from demo.data import generate_jaffle_shop
    from flows.elt import elt
    from flows.extract_load import DEFAULT_DATA_DIR
    from pipeline.loading import TableLoad
    from pipeline.summaries import text_table
    from pipeline.transform_result import TransformResult

    data_dir = data_dir or Path(DEFAULT_DATA_DIR)

    days, rerun = next_dataset(data_dir)
    print(f"Generating {days} days of jaffle-shop orders in {data_dir}/"
          + (f" ({DAYS_PER_RERUN} new days since the last demo)" if rerun else ""))  # fmt: skip
    generate_jaffle_shop(data_dir, days=days)

    async def run_elt() -> State[tuple[list[TableLoad], TransformResult]]:
        # A first demo loads from scratch: a warehouse left by an earlier demo holds watermarks
        # past the regenerated orders, whose customers it would never load.
        return await elt(data_dir=str(data_dir), full_refresh=not rerun, return_state=True)

    state = asyncio.run(run_elt())
    ui = (PREFECT_UI_URL.value() or "http://127.0.0.1:4200").rstrip("/")
    print(f"\nRun: {state.name}. In the Prefect UI: {ui}/runs/flow-run/"
          f"{state.state_details.flow_run_id}")  # fmt: skip
    if not state.is_completed():
        print(f"The run failed: {state.message}", file=sys.stderr)
        return 1
    (data_dir / "_demo.json").write_text(json.dumps({"days": days}))
    loads, built = state.result()
    print(f"Loaded {sum(x.inserted + x.updated for x in loads):,} rows "
          + ("incrementally (only the new rows)" if rerun else "from scratch")
          + f"; dbt built {built.counts['models']} models, passed {built.counts['tests_passed']}"
          f" tests; {built.scope_text}.")  # fmt: skip
    warehouse = load_environment("local").warehouse
    if isinstance(warehouse, DuckDBWarehouse):
        with warehouse:
            rows = warehouse.query(
                "SELECT customer_name, count_lifetime_orders, lifetime_spend, customer_type "
                f"FROM {warehouse.transform_schema}.customers "
                "ORDER BY lifetime_spend DESC, customer_id LIMIT 5"
            )
        print(f"\nTop customers ({warehouse.transform_schema}.customers in "
              f"{Path(warehouse.path).resolve()}):")  # fmt: skip
        print(text_table(["customer", "orders", "spend", "type"], rows))
    print("\n`make demo` again loads a week of new orders; `make stop` stops the Prefect server.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
