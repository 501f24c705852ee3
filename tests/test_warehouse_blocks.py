"""The warehouse contract, on DuckDB and on Snowflake: one connection per `with`, bulk loads."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pyarrow as pa
import pytest
from prefect import flow, task, unmapped
from prefect.cache_policies import NONE

from blocks import Warehouse, WarehouseNotOpenError
from tests.support.warehouses import ConnectionLog

pytestmark = pytest.mark.usefixtures("prefect_api")

ROWS = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": ["ann", "bob", None],
        "amount": pa.array([1.5, 2.25, -3.0], pa.float64()),
        "active": [True, False, True],
        "ordered_at": pa.array(
            [datetime(2025, 1, 1, 8), datetime(2025, 1, 2, 9, 30), datetime(2025, 2, 3, 23, 59)],
            pa.timestamp("us"),
        ),
    }
)


@task(cache_policy=NONE)
def count_rows(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.query(f"SELECT COUNT(*) FROM {warehouse.qualified(table)}")[0][0])


@task(cache_policy=NONE)
def load(warehouse: Warehouse, table: str, data: pa.Table) -> int:
    return warehouse.bulk_load(table, data)


@task(cache_policy=NONE)
def fail_inside(warehouse: Warehouse) -> None:
    warehouse.query("SELECT 1")
    raise RuntimeError("task failed on purpose")


@flow
def three_tasks_in_one_with(warehouse: Warehouse) -> int:
    with warehouse:
        load(warehouse, "items", ROWS)
        load(warehouse, "items", ROWS)
        return count_rows(warehouse, "items")


@flow
def failing_task_in_with(warehouse: Warehouse) -> None:
    with warehouse:
        fail_inside(warehouse)


@task(cache_policy=NONE)
def count_in_own_connection(warehouse: Warehouse, table: str) -> int:
    with warehouse.fresh() as own:
        return int(own.query(f"SELECT COUNT(*) FROM {own.qualified(table)}")[0][0])


@flow
def mapped_tasks_open_their_own(warehouse: Warehouse) -> list[int]:
    with warehouse:
        warehouse.bulk_load("items", ROWS)
    futures = count_in_own_connection.map(unmapped(warehouse), ["items", "items", "items"])
    return [future.result() for future in futures]


def test_tasks_inside_one_with_share_one_connection(
    warehouse: tuple[Warehouse, ConnectionLog],
) -> None:
    block, connections = warehouse
    assert three_tasks_in_one_with(block) == 6
    assert len(connections.opened) == 1
    assert connections.all_closed
    assert not block.is_open


def test_connection_is_closed_when_a_task_fails(
    warehouse: tuple[Warehouse, ConnectionLog],
) -> None:
    block, connections = warehouse
    with pytest.raises(RuntimeError, match="task failed on purpose"):
        failing_task_in_with(block)
    assert len(connections.opened) == 1
    assert connections.all_closed


def test_mapped_tasks_each_open_and_close_their_own_connection(
    warehouse: tuple[Warehouse, ConnectionLog],
) -> None:
    block, connections = warehouse
    assert mapped_tasks_open_their_own(block) == [3, 3, 3]
    assert len(connections.opened) == 4
    assert connections.all_closed


def test_bulk_load_round_trips_rows_and_types(warehouse: tuple[Warehouse, ConnectionLog]) -> None:
    block, _ = warehouse
    with block:
        assert block.bulk_load("typed", ROWS) == 3
        rows = block.query(
            f"SELECT id, name, amount, active, ordered_at FROM {block.qualified('typed')} "
            "ORDER BY id"
        )
    assert rows == [tuple(row.values()) for row in ROWS.to_pylist()]


def test_bulk_load_consumes_a_stream_of_batches(warehouse: tuple[Warehouse, ConnectionLog]) -> None:
    block, _ = warehouse
    stream = pa.RecordBatchReader.from_batches(ROWS.schema, ROWS.to_batches(max_chunksize=2))
    with block:
        assert block.bulk_load("streamed", stream) == 3
        rows = block.query(f"SELECT id, name FROM {block.qualified('streamed')} ORDER BY id")
    assert rows == [(1, "ann"), (2, "bob"), (3, None)]


def test_bulk_load_accepts_a_dataframe(warehouse: tuple[Warehouse, ConnectionLog]) -> None:
    block, _ = warehouse
    with block:
        assert block.bulk_load("frame", pd.DataFrame({"id": [1, 2], "sku": ["a", "b"]})) == 2
        assert block.query(f"SELECT sku FROM {block.qualified('frame')} WHERE id = ?", [2]) == [
            ("b",)
        ]


def test_transaction_rolls_back_everything_on_error(
    warehouse: tuple[Warehouse, ConnectionLog],
) -> None:
    block, _ = warehouse
    table = "ledger"
    with block:
        block.bulk_load(table, ROWS)
        with pytest.raises(RuntimeError), block.transaction():
            block.execute(f"DELETE FROM {block.qualified(table)}")
            raise RuntimeError("publish interrupted")
        assert block.query(f"SELECT COUNT(*) FROM {block.qualified(table)}") == [(3,)]


def test_sql_outside_the_with_says_how_to_open_it(
    warehouse: tuple[Warehouse, ConnectionLog],
) -> None:
    block, connections = warehouse
    with pytest.raises(WarehouseNotOpenError, match="inside `with warehouse:`"):
        block.query("SELECT 1")
    assert connections.opened == []


def test_replace_table_swaps_in_the_staged_rows_atomically(
    warehouse: tuple[Warehouse, ConnectionLog],
) -> None:
    block, _ = warehouse
    with block:
        block.bulk_load("target", ROWS)
        block.bulk_load("staged", ROWS.slice(0, 1))
        block.replace_table("target", "staged")
        assert block.query(f"SELECT id FROM {block.qualified('target')}") == [(1,)]
        assert block.columns("target") == ["id", "name", "amount", "active", "ordered_at"]


def test_replace_table_creates_a_missing_target(
    warehouse: tuple[Warehouse, ConnectionLog],
) -> None:
    block, _ = warehouse
    with block:
        block.bulk_load("staged_new", ROWS)
        assert not block.table_exists("fresh_target")
        block.replace_table("fresh_target", "staged_new")
        assert block.table_exists("fresh_target")
        assert block.query(f"SELECT COUNT(*) FROM {block.qualified('fresh_target')}") == [(3,)]
