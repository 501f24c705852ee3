"""Input a load can't take at face value, on DuckDB and on Snowflake (fakesnow): cursors that are
NULL or later than the run's start, CSV text that looks like NULL, files with no rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blocks import Warehouse
from pipeline.loading import LoadError, LoadWindow, TableLoad, load_source
from pipeline.sources import Source
from tests.support.warehouses import ConnectionLog

ORDERS = pa.schema([("id", pa.int64()), ("ordered_at", pa.timestamp("us")), ("note", pa.string())])
JAN_1, JAN_2, JAN_3 = datetime(2025, 1, 1, 9), datetime(2025, 1, 2, 9), datetime(2025, 1, 3, 9)
RUN_STARTED = datetime(2025, 1, 10, 2)
FAR_FUTURE = datetime(9999, 12, 31)
PRODUCTS = pa.schema([("sku", pa.string()), ("name", pa.string()), ("description", pa.string())])


def write_orders(path: Path, rows: list[tuple[int, datetime | None]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids, times = zip(*rows, strict=True)
    pq.write_table(pa.table([ids, times, [f"order {i}" for i in ids]], schema=ORDERS), path)
    return path


def orders_in(folder: Path, **options: Any) -> Source:
    return Source("raw_orders", f"{folder}/*.parquet", "parquet", ORDERS, ("id",), "ordered_at",
                  **options)  # fmt: skip


def load(block: Warehouse, source: Source, **options: Any) -> TableLoad:
    with block:
        return load_source(block, source, run_started=options.pop("run_started", RUN_STARTED),
                           **options)  # fmt: skip


def rows(block: Warehouse, table: str, columns: str) -> list[tuple[Any, ...]]:
    with block.fresh() as own:
        if not own.table_exists(table):
            return []
        return own.query(f"SELECT {columns} FROM {own.qualified(table)} ORDER BY 1")


def test_a_cursor_later_than_the_run_start_fails_the_table_naming_file_row_and_value(
    warehouse: tuple[Warehouse, ConnectionLog], tmp_path: Path
) -> None:
    block, _ = warehouse
    file = write_orders(tmp_path / "orders" / "a.parquet",
                        [(1, JAN_1), (2, JAN_2), (3, FAR_FUTURE)])  # fmt: skip
    with pytest.raises(LoadError) as refused:
        load(block, orders_in(tmp_path / "orders"))
    message = str(refused.value)
    assert f"{file} row 3 (id=3): ordered_at = 9999-12-31 00:00:00" in message
    assert "later than 2025-01-10 03:00:00 (the run's start plus cursor_tolerance 1:00:00)" in (
        message
    )
    assert "on_untrusted_cursor='load and report'" in message  # the other way out
    assert rows(block, "raw_orders", "id") == []


def test_a_null_cursor_fails_the_table_on_a_later_load_too_and_leaves_it_unchanged(
    warehouse: tuple[Warehouse, ConnectionLog], tmp_path: Path
) -> None:
    block, _ = warehouse
    write_orders(tmp_path / "orders" / "a.parquet", [(1, JAN_1), (2, JAN_2)])
    load(block, orders_in(tmp_path / "orders"))
    # Below the watermark (NULL is below everything): a `cursor >= watermark` read drops it.
    later = write_orders(tmp_path / "orders" / "b.parquet", [(3, JAN_3), (4, None)])
    with pytest.raises(LoadError, match=rf"1 row\(s\) .*{later} row 2 \(id=4\): ordered_at = NULL"):
        load(block, orders_in(tmp_path / "orders"))
    assert rows(block, "raw_orders", "id") == [(1,), (2,)]


def test_a_backfill_window_refuses_untrusted_cursors_outside_it_too(
    warehouse: tuple[Warehouse, ConnectionLog], tmp_path: Path
) -> None:
    block, _ = warehouse
    write_orders(tmp_path / "orders" / "a.parquet", [(1, JAN_1), (2, JAN_2)])
    load(block, orders_in(tmp_path / "orders"))
    write_orders(tmp_path / "orders" / "b.parquet", [(3, JAN_2), (4, FAR_FUTURE)])
    window = LoadWindow(datetime(2025, 1, 2), datetime(2025, 1, 2, 23, 59, 59))
    with pytest.raises(LoadError, match=r"row 2 \(id=4\): ordered_at = 9999-12-31"):
        load(block, orders_in(tmp_path / "orders"), backfill=window)
    assert rows(block, "raw_orders", "id") == [(1,), (2,)]


def test_load_and_report_loads_untrusted_rows_names_them_and_the_watermark_stays_at_the_run_start(
    warehouse: tuple[Warehouse, ConnectionLog], tmp_path: Path
) -> None:
    block, _ = warehouse
    source = orders_in(tmp_path / "orders", on_untrusted_cursor="load and report")
    write_orders(tmp_path / "orders" / "a.parquet", [(1, JAN_1), (2, None), (3, FAR_FUTURE)])
    first = load(block, source)
    reported = [(Path(r.file).name, r.row, r.key, r.value) for r in first.untrusted_rows]
    assert reported == [("a.parquet", 2, "id=2", None), ("a.parquet", 3, "id=3", FAR_FUTURE)]
    assert first.untrusted_count == 2
    assert first.watermark_after == JAN_1
    write_orders(tmp_path / "orders" / "b.parquet", [(4, JAN_2)])
    second = load(block, source, run_started=RUN_STARTED + timedelta(days=1))
    assert (second.watermark_before, second.watermark_after) == (JAN_1, JAN_2)
    assert second.inserted == 1  # a later row is not skipped past the far-future one
    assert second.untrusted_count == 2  # and those are reported on every load that reads them
    assert rows(block, "raw_orders", "id, ordered_at") == [
        (1, JAN_1), (2, None), (3, FAR_FUTURE), (4, JAN_2)
    ]  # fmt: skip


def test_a_cursor_within_the_declared_tolerance_loads_but_the_watermark_stops_at_the_run_start(
    warehouse: tuple[Warehouse, ConnectionLog], tmp_path: Path
) -> None:
    block, _ = warehouse
    soon = RUN_STARTED + timedelta(minutes=30)
    write_orders(tmp_path / "orders" / "a.parquet", [(1, JAN_1), (2, soon)])
    loaded = load(block, orders_in(tmp_path / "orders"))
    assert (loaded.inserted, loaded.untrusted_count, loaded.watermark_after) == (2, 0, JAN_1)
    strict = orders_in(tmp_path / "orders", cursor_tolerance=timedelta(0))
    with pytest.raises(LoadError, match=r"row 2 \(id=2\): ordered_at = 2025-01-10 02:30:00"):
        load(block, replace(strict, name="raw_orders_strict"))


CSV_TEXT = """sku,name,description
"NA","N/A","nan"
"JAF-1",null,NA
"JAF-2","",
JAF-3,n/a,
"""


def products_in(path: Path, **options: Any) -> Source:
    return Source("raw_products", str(path), "csv", PRODUCTS, ("sku",), **options)


def test_csv_text_that_looks_like_null_stays_text_and_only_an_empty_field_is_null(
    warehouse: tuple[Warehouse, ConnectionLog], tmp_path: Path
) -> None:
    block, _ = warehouse
    (tmp_path / "products.csv").write_text(CSV_TEXT)
    load(block, products_in(tmp_path / "products.csv"))
    assert rows(block, "raw_products", "sku, name, description") == [
        ("JAF-1", "null", "NA"),
        ("JAF-2", "", None),  # a quoted empty string is text; an empty field is NULL
        ("JAF-3", "n/a", None),
        ("NA", "N/A", "nan"),  # a key `NA` is a key
    ]


def test_csv_null_values_a_source_declares_read_as_null_when_unquoted(
    warehouse: tuple[Warehouse, ConnectionLog], tmp_path: Path
) -> None:
    block, _ = warehouse
    (tmp_path / "products.csv").write_text(CSV_TEXT)
    load(block, products_in(tmp_path / "products.csv", csv_null_values=("", "NA", "null")))
    assert rows(block, "raw_products", "sku, name, description") == [
        ("JAF-1", None, None), ("JAF-2", "", None), ("JAF-3", "n/a", None), ("NA", "N/A", "nan")
    ]  # fmt: skip


EMPTY_FILES = {"a header only": "sku,name,description\n", "no bytes": ""}


@pytest.mark.parametrize("content", list(EMPTY_FILES))
def test_a_full_refresh_from_a_file_without_rows_fails_and_keeps_the_rows(
    warehouse: tuple[Warehouse, ConnectionLog], tmp_path: Path, content: str
) -> None:
    block, _ = warehouse
    file = tmp_path / "products.csv"
    file.write_text(CSV_TEXT)
    load(block, products_in(file))
    file.write_text(EMPTY_FILES[content])
    with pytest.raises(LoadError, match=rf"{file} holds no rows .*allow_empty=True"):
        load(block, products_in(file))
    assert len(rows(block, "raw_products", "sku")) == 4


@pytest.mark.parametrize("content", list(EMPTY_FILES))
def test_a_source_that_allows_empty_files_empties_its_table_or_creates_it_empty(
    warehouse: tuple[Warehouse, ConnectionLog], tmp_path: Path, content: str
) -> None:
    block, _ = warehouse
    file, empty = tmp_path / "products.csv", tmp_path / "none.csv"
    file.write_text(CSV_TEXT)
    empty.write_text(EMPTY_FILES[content])
    load(block, products_in(file, allow_empty=True))
    emptied = load(block, products_in(empty, allow_empty=True))
    assert (emptied.rows_read, rows(block, "raw_products", "sku")) == (0, [])
    created = load(block, replace(products_in(empty, allow_empty=True), name="raw_no_products"))
    with block.fresh() as own:
        columns = own.columns("raw_no_products")
    assert created.rows_read == 0
    assert columns == ["sku", "name", "description", "_loaded_at"]
