"""How a table's load is planned from what is known about it (a pure decision, no warehouse),
and carried out with the statements it needs and no more."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from blocks import DuckDBWarehouse
from demo.data import generate_jaffle_shop
from pipeline.datasets.jaffle_shop import JAFFLE_SHOP
from pipeline.loading import LoadFacts, LoadPlan, LoadWindow, load_source, plan_load

ORDERS = JAFFLE_SHOP.source("raw_orders")  # an event table: cursor ordered_at
CUSTOMERS = JAFFLE_SHOP.source("raw_customers")  # change-tracked: cursor updated_at
STORES = JAFFLE_SHOP.source("raw_stores")  # no cursor: always a full refresh
HTTP_ORDERS = replace(ORDERS, location="https://data.example.com/raw_orders.parquet")
STORES_MAY_BE_EMPTY = replace(STORES, allow_empty=True)
LATE_ORDERS_OK = replace(ORDERS, cursor_tolerance=timedelta(days=2))
RUN_STARTED = datetime(2025, 1, 6, 2, 0)
COLUMNS = ("id", "_loaded_at")
JAN_2 = LoadWindow(datetime(2025, 1, 2), datetime(2025, 1, 2, 23, 59, 59))
WATERMARK = datetime(2025, 1, 5, 21, 0)


@dataclass(frozen=True)
class Spec:
    """Facts in, the plan expected out, and the window it reads (given WATERMARK, when the
    plan asks for the target's watermark)."""

    facts: LoadFacts
    plan: LoadPlan
    reads: LoadWindow | None


SPECS = {
    "first load of an event table reads everything and replaces": Spec(
        LoadFacts(ORDERS, fingerprint="f1"),
        LoadPlan("incremental", record_fingerprint=True),
        None,
    ),
    "first load of a table without a cursor is a full refresh": Spec(
        LoadFacts(STORES, fingerprint="f1"),
        LoadPlan("full refresh", record_fingerprint=True),
        None,
    ),
    "an existing event table with new files merges from its watermark": Spec(
        LoadFacts(ORDERS, target_columns=COLUMNS, fingerprint="f2", stored_fingerprint="f1"),
        LoadPlan(
            "incremental",
            "from the watermark",
            query_watermark=True,
            publish_by="merge",
            record_fingerprint=True,
            when_empty="keep the table",
        ),
        LoadWindow(since=WATERMARK),
    ),
    "full refresh of an event table reads everything and replaces it": Spec(
        LoadFacts(ORDERS, full_refresh=True, target_columns=COLUMNS, fingerprint="f1"),
        LoadPlan("full refresh", query_watermark=True, record_fingerprint=True),
        None,
    ),
    "full refresh ignores a backfill window": Spec(
        LoadFacts(ORDERS, full_refresh=True, backfill=JAN_2, target_columns=COLUMNS),
        LoadPlan("full refresh", query_watermark=True),
        None,
    ),
    "full refresh reloads files whose fingerprint is unchanged": Spec(
        LoadFacts(
            STORES,
            full_refresh=True,
            target_columns=COLUMNS,
            fingerprint="f1",
            stored_fingerprint="f1",
        ),
        LoadPlan("full refresh", record_fingerprint=True),
        None,
    ),
    "a backfill window on an event table merges just that window": Spec(
        LoadFacts(ORDERS, backfill=JAN_2, target_columns=COLUMNS, fingerprint="f1"),
        LoadPlan(
            "backfill",
            "the backfill window",
            JAN_2,
            query_watermark=True,
            publish_by="merge",
            when_empty="keep the table",
        ),
        JAN_2,
    ),
    "a backfill into a missing event table replaces with the window": Spec(
        LoadFacts(ORDERS, backfill=JAN_2, fingerprint="f1"),
        LoadPlan("backfill", "the backfill window", JAN_2, when_empty="keep the table"),
        JAN_2,
    ),
    "a backfill is not skipped by an unchanged fingerprint": Spec(
        LoadFacts(
            ORDERS,
            backfill=JAN_2,
            target_columns=COLUMNS,
            fingerprint="f1",
            stored_fingerprint="f1",
        ),
        LoadPlan(
            "backfill",
            "the backfill window",
            JAN_2,
            query_watermark=True,
            publish_by="merge",
            when_empty="keep the table",
        ),
        JAN_2,
    ),
    "a backfill loads a change-tracked table incrementally": Spec(
        LoadFacts(
            CUSTOMERS,
            backfill=JAN_2,
            target_columns=COLUMNS,
            fingerprint="f2",
            stored_fingerprint="f1",
        ),
        LoadPlan(
            "incremental",
            "from the watermark",
            query_watermark=True,
            publish_by="merge",
            record_fingerprint=True,
            when_empty="keep the table",
        ),
        LoadWindow(since=WATERMARK),
    ),
    "a backfill skips an unchanged change-tracked table": Spec(
        LoadFacts(
            CUSTOMERS,
            backfill=JAN_2,
            target_columns=COLUMNS,
            fingerprint="f1",
            stored_fingerprint="f1",
        ),
        LoadPlan("unchanged"),
        None,
    ),
    "a backfill reloads a table without a cursor in full": Spec(
        LoadFacts(
            STORES,
            backfill=JAN_2,
            target_columns=COLUMNS,
            fingerprint="f2",
            stored_fingerprint="f1",
        ),
        LoadPlan("full refresh", record_fingerprint=True),
        None,
    ),
    "unchanged files of a loaded table are skipped": Spec(
        LoadFacts(STORES, target_columns=COLUMNS, fingerprint="f1", stored_fingerprint="f1"),
        LoadPlan("unchanged"),
        None,
    ),
    "unchanged cursor files of a loaded table are skipped": Spec(
        LoadFacts(ORDERS, target_columns=COLUMNS, fingerprint="f1", stored_fingerprint="f1"),
        LoadPlan("unchanged"),
        None,
    ),
    "changed files of a table without a cursor replace it": Spec(
        LoadFacts(STORES, target_columns=COLUMNS, fingerprint="f2", stored_fingerprint="f1"),
        LoadPlan("full refresh", record_fingerprint=True),
        None,
    ),
    "a cursor table without a stored fingerprint merges from its watermark and records one": Spec(
        LoadFacts(ORDERS, target_columns=COLUMNS, fingerprint="f1", stored_fingerprint=None),
        LoadPlan(
            "incremental",
            "from the watermark",
            query_watermark=True,
            publish_by="merge",
            record_fingerprint=True,
            when_empty="keep the table",
        ),
        LoadWindow(since=WATERMARK),
    ),
    "a missing table is loaded even if its files' fingerprint is stored": Spec(
        LoadFacts(STORES, fingerprint="f1", stored_fingerprint="f1"),
        LoadPlan("full refresh", record_fingerprint=True),
        None,
    ),
    "an http source without a fingerprint is never skipped nor recorded": Spec(
        LoadFacts(HTTP_ORDERS, target_columns=COLUMNS, fingerprint="", stored_fingerprint=""),
        LoadPlan(
            "incremental",
            "from the watermark",
            query_watermark=True,
            publish_by="merge",
            when_empty="keep the table",
        ),
        LoadWindow(since=WATERMARK),
    ),
    "a full load that finds no rows fails, unless the source allows an empty table": Spec(
        LoadFacts(STORES_MAY_BE_EMPTY, target_columns=COLUMNS, fingerprint="f2"),
        LoadPlan("full refresh", record_fingerprint=True, when_empty="empty the table"),
        None,
    ),
    "cursor values are trusted up to the run's start plus the tolerance; the watermark "
    "stops at the start": Spec(
        LoadFacts(
            LATE_ORDERS_OK, target_columns=COLUMNS, fingerprint="f2", run_started=RUN_STARTED
        ),
        LoadPlan(
            "incremental",
            "from the watermark",
            query_watermark=True,
            publish_by="merge",
            record_fingerprint=True,
            when_empty="keep the table",
            trusted_until=datetime(2025, 1, 8, 2, 0),
            watermark_limit=RUN_STARTED,
        ),
        LoadWindow(since=WATERMARK),
    ),
    "a backfill trusts cursor values up to the run's start plus an hour by default": Spec(
        LoadFacts(ORDERS, backfill=JAN_2, target_columns=COLUMNS, run_started=RUN_STARTED),
        LoadPlan(
            "backfill",
            "the backfill window",
            JAN_2,
            query_watermark=True,
            publish_by="merge",
            when_empty="keep the table",
            trusted_until=datetime(2025, 1, 6, 3, 0),
            watermark_limit=RUN_STARTED,
        ),
        JAN_2,
    ),
    "a table without a cursor has no cursor bounds": Spec(
        LoadFacts(STORES, target_columns=COLUMNS, fingerprint="f2", run_started=RUN_STARTED),
        LoadPlan("full refresh", record_fingerprint=True),
        None,
    ),
    "a replace that copies the rows (Snowflake) stages them in a temporary table": Spec(
        LoadFacts(STORES, target_columns=COLUMNS, fingerprint="f2", replace_copies_rows=True),
        LoadPlan("full refresh", record_fingerprint=True, replace_copies_rows=True),
        None,
    ),
}


@pytest.mark.parametrize("spec", list(SPECS))
def test_the_plan_follows_from_the_facts(spec: str) -> None:
    facts, expected, reads = SPECS[spec].facts, SPECS[spec].plan, SPECS[spec].reads
    plan = plan_load(facts)
    assert plan == expected
    assert plan.read_window(WATERMARK if plan.query_watermark else None) == reads
    assert plan.skip == (expected.mode == "unchanged")
    assert plan.temporary_staging == (expected.publish_by == "merge" or facts.replace_copies_rows)


def may_skip(**facts: Any) -> bool:
    return LoadFacts(ORDERS, **facts).may_skip


def test_the_stored_fingerprint_is_looked_up_only_when_it_could_skip_the_load() -> None:
    loaded = {"target_columns": COLUMNS, "fingerprint": "f1"}
    assert may_skip(**loaded)
    assert may_skip(**loaded, backfill=JAN_2) is False  # a backfill reads a window regardless
    assert may_skip(**loaded, full_refresh=True) is False
    assert may_skip(fingerprint="f1") is False  # no target table: nothing to skip to
    assert may_skip(target_columns=COLUMNS, fingerprint="") is False  # nothing to compare
    assert LoadFacts(CUSTOMERS, backfill=JAN_2, **loaded).may_skip  # change-tracked


class StatementLog:
    """The warehouse calls load_source makes (not those they make in turn): the method, and the
    first three words of its SQL."""

    def __init__(self, warehouse: DuckDBWarehouse) -> None:
        self.calls: list[str] = []
        self._depth = 0
        for method in ("table_columns", "query", "execute", "bulk_load", "replace_table"):
            object.__setattr__(warehouse, method, self._logged(method, getattr(warehouse, method)))

    def _logged(self, method: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def logged(what: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._depth:
                words = what.split()[:3] if method in ("query", "execute") else []
                self.calls.append(" ".join([method, *words]) if words else method)
            self._depth += 1
            try:
                return call(what, *args, **kwargs)
            finally:
                self._depth -= 1

        return logged


def test_the_executor_skips_an_unchanged_table_after_two_lookups_and_loads_new_rows_in_eight(
    tmp_path: Path,
) -> None:
    data = tmp_path / "jaffle"
    generate_jaffle_shop(data, days=2, orders_per_day_at_start=20)
    orders = JAFFLE_SHOP.sources(data)[JAFFLE_SHOP.table_names.index("raw_orders")]
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    with warehouse:
        load_source(warehouse, orders)
        log = StatementLog(warehouse)
        assert load_source(warehouse, orders).mode == "unchanged"
        unchanged, log.calls = log.calls, []
        generate_jaffle_shop(data, days=3, orders_per_day_at_start=20)
        assert load_source(warehouse, orders).mode == "incremental"
    # The catalog lookup also looks for a killed load's staging table (none here).
    assert unchanged == ["table_columns", "query SELECT fingerprint FROM"]
    assert log.calls == [
        "table_columns",
        "query SELECT fingerprint FROM",
        'query SELECT MAX("ordered_at") FROM',
        "bulk_load",
        "query SELECT COUNT(*) FROM",  # rows the MERGE will match: the updated count
        'execute MERGE INTO "raw"."raw_orders"',
        'execute MERGE INTO "raw"."_elt_source_state"',
        "execute DROP TABLE IF",
    ]
