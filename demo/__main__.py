"""`make demo`: generate the demo data, run the ELT locally, and say where to look.

A second run adds a week of new orders first, so it shows an incremental load.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prefect.settings import PREFECT_UI_URL

from blocks import DuckDBWarehouse, load_environment
from demo.data import generate_jaffle_shop
from flows.elt import elt
from flows.extract_load import DEFAULT_DATA_DIR

FIRST_DAYS, DAYS_PER_RERUN = 30, 7


def next_dataset(data_dir: Path) -> tuple[int, bool]:
    """Days of data to generate now, and whether this is a rerun."""
    state = data_dir / "_demo.json"
    if state.exists():
        return json.loads(state.read_text())["days"] + DAYS_PER_RERUN, True
    return FIRST_DAYS, False


def mart_preview(warehouse: DuckDBWarehouse) -> list[tuple[object, ...]]:
    """The top customers by lifetime spend, read from the customers mart."""
    with warehouse:
        return warehouse.query(
            "SELECT customer_name, count_lifetime_orders, lifetime_spend, customer_type "
            f"FROM {warehouse.transform_schema}.customers "
            "ORDER BY lifetime_spend DESC, customer_id LIMIT 5"
        )


def main(data_dir: Path = Path(DEFAULT_DATA_DIR)) -> int:
    days, rerun = next_dataset(data_dir)
    print(f"Generating {days} days of jaffle-shop orders in {data_dir}/"
          + (f" ({DAYS_PER_RERUN} new days since the last demo)" if rerun else ""))  # fmt: skip
    generate_jaffle_shop(data_dir, days=days)
    print("Running the `elt` flow (extract-load, then dbt build) ...")
    state = elt(data_dir=str(data_dir), return_state=True)
    flow_run_id = state.state_details.flow_run_id
    ui = (PREFECT_UI_URL.value() or "http://127.0.0.1:4200").rstrip("/")
    print(f"\nRun: {state.name}. See it in the Prefect UI: {ui}/runs/flow-run/{flow_run_id}")
    if not state.is_completed():
        print(f"The run failed: {state.message}", file=sys.stderr)
        return 1
    (data_dir / "_demo.json").write_text(json.dumps({"days": days}))
    loads, built = state.result()
    mode = "incrementally (only the new rows)" if rerun else "from scratch"
    print(f"Loaded {sum(x.inserted + x.updated for x in loads):,} rows {mode}; "
          f"dbt built {built.counts.get('models', 0)} models and passed "
          f"{built.counts.get('tests_passed', 0)} tests.")  # fmt: skip
    warehouse = load_environment("local").warehouse
    if isinstance(warehouse, DuckDBWarehouse):
        print(f"Warehouse: DuckDB file {Path(warehouse.path).resolve()}")
        print("Top customers (analytics.customers):")
        for row in mart_preview(warehouse):
            print("  ", row)
    print("Run `make demo` again to load a week of new orders incrementally; `make stop` stops "
          "the Prefect server.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
