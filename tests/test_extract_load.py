"""extract_load on DuckDB and on Snowflake (fakesnow): atomic, idempotent, incremental loads."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.states import Failed
from snowflake.connector import errors as sf_errors
from snowflake.connector import pandas_tools

import flows.extract_load
import pipeline.loading
from blocks import Warehouse
from demo.data import generate_jaffle_shop
from flows.extract_load import extract_load, load_table
from pipeline.datasets import DATASETS, Dataset
from pipeline.datasets.jaffle_shop import JAFFLE_SHOP
from pipeline.loading import (
    ExtractLoadError,
    KeyCheck,
    LoadError,
    Staged,
    is_transient,
    retry_if_transient,
    watermark_after,
)
from pipeline.sources import SourceError
from tests.support.artifacts import latest_artifact
from tests.support.environments import save_environment
from tests.support.warehouses import ConnectionLog

pytestmark = pytest.mark.usefixtures("prefect_api")

TABLES = JAFFLE_SHOP.table_names
SMALL = {"orders_per_day_at_start": 40}


@pytest.fixture
def environment(warehouse: tuple[Warehouse, ConnectionLog]) -> Iterator[str]:
    """An ELT environment whose warehouse is the block under test."""
    block, _ = warehouse
    name = f"test-{uuid.uuid4().hex[:8]}"
    save_environment(name, warehouse=block)
    yield name


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    generate_jaffle_shop(tmp_path / "jaffle", days=3, **SMALL)
    return tmp_path / "jaffle"


def counts(warehouse: Warehouse) -> dict[str, int]:
    with warehouse.fresh() as own:
        return {
            t: own.query(f"SELECT COUNT(*) FROM {own.qualified(t)}")[0][0]
            for t in TABLES
            if own.table_exists(t)
        }


def parquet_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def expected_counts(data_dir: Path) -> dict[str, int]:
    found = {}
    for table in TABLES:
        path = next(data_dir.glob(f"{table}.*"))
        if path.suffix == ".parquet":
            found[table] = parquet_rows(path)
        else:
            found[table] = len(path.read_text().splitlines()) - 1
    return found


def run(environment: str, data_dir: Path, **parameters: Any) -> Any:
    return extract_load(environment=environment, data_dir=str(data_dir), **parameters)


def test_loading_twice_counts_once(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    block, _ = warehouse
    run(environment, data_dir)
    run(environment, data_dir)
    assert counts(block) == expected_counts(data_dir)


def test_the_flow_loads_the_tables_of_the_dataset_it_is_given_by_name(
    warehouse: tuple[Warehouse, ConnectionLog],
    environment: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block, _ = warehouse
    orders_only = Dataset("orders_only", (JAFFLE_SHOP.source("raw_orders"),))
    monkeypatch.setitem(DATASETS, orders_only.name, orders_only)
    loads = run(environment, data_dir, dataset="orders_only")
    assert [load.table for load in loads] == ["raw_orders"]
    assert counts(block) == {"raw_orders": expected_counts(data_dir)["raw_orders"]}
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; known datasets: .*orders_only"):
        run(environment, data_dir, dataset="nope")


def test_incremental_run_after_new_days_loads_only_the_new_rows(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    block, _ = warehouse
    first = {r.table: r for r in run(environment, data_dir)}
    before = parquet_rows(data_dir / "raw_orders.parquet")
    generate_jaffle_shop(data_dir, days=5, **SMALL)
    new_orders = parquet_rows(data_dir / "raw_orders.parquet") - before
    second = {r.table: r for r in run(environment, data_dir)}
    orders = second["raw_orders"]
    assert orders.mode == "incremental"
    assert orders.watermark_before == first["raw_orders"].watermark_after
    assert orders.watermark_after > orders.watermark_before
    assert orders.inserted == new_orders
    # Only rows at or after the watermark are read again: the new ones plus its last instant.
    assert new_orders <= orders.rows_read <= new_orders + 1
    assert counts(block) == expected_counts(data_dir)


def test_full_refresh_reloads_incremental_tables_from_scratch(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    block, _ = warehouse
    run(environment, data_dir)
    results = {r.table: r for r in run(environment, data_dir, full_refresh=True)}
    assert results["raw_items"].mode == "full refresh"
    assert results["raw_items"].rows_read == parquet_rows(data_dir / "raw_items.parquet")
    assert counts(block) == expected_counts(data_dir)


def test_backfill_window_reloads_just_that_range(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    block, _ = warehouse
    run(environment, data_dir)
    start, end = datetime(2025, 1, 2), datetime(2025, 1, 2, 23, 59, 59)
    orders = pq.read_table(data_dir / "raw_orders.parquet")
    in_window = pc.sum(
        pc.and_(
            pc.greater_equal(orders["ordered_at"], start), pc.less_equal(orders["ordered_at"], end)
        )
    ).as_py()
    results = {
        r.table: r for r in run(environment, data_dir, backfill_start=start, backfill_end=end)
    }
    assert results["raw_orders"].mode == "backfill"
    assert results["raw_orders"].rows_read == in_window
    assert results["raw_orders"].updated == in_window
    assert counts(block) == expected_counts(data_dir)


def test_a_backfill_brings_change_tracked_tables_up_to_date_so_window_facts_find_their_rows(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    block, _ = warehouse
    start, end = datetime(2025, 1, 2), datetime(2025, 1, 2, 23, 59, 59)
    results = {
        r.table: r for r in run(environment, data_dir, backfill_start=start, backfill_end=end)
    }
    assert results["raw_orders"].mode == "backfill"
    assert results["raw_customers"].mode == "incremental"
    assert counts(block)["raw_customers"] == expected_counts(data_dir)["raw_customers"]
    assert counts(block)["raw_orders"] < expected_counts(data_dir)["raw_orders"]


@pytest.fixture
def loaded_then_grown(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> Warehouse:
    """The warehouse after one load, its source files grown by five more days since."""
    block, _ = warehouse
    run(environment, data_dir)
    generate_jaffle_shop(data_dir, days=5, **SMALL)
    return block


def staging_tables_another_connection_sees(block: Warehouse) -> list[Any]:
    with block.fresh() as other:
        return other.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE LOWER(table_name) LIKE '%staging%'"
        )


def test_failure_between_staging_and_publish_leaves_the_target_unchanged(
    loaded_then_grown: Warehouse,
    environment: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block = loaded_then_grown
    before = counts(block)
    real_publish = pipeline.loading.publish

    def interrupted(warehouse: Warehouse, source: Any, *args: Any) -> Any:
        if source.name == "raw_orders":
            raise RuntimeError("connection lost before publish")
        return real_publish(warehouse, source, *args)

    monkeypatch.setattr(pipeline.loading, "publish", interrupted)
    with pytest.raises(ExtractLoadError, match=rf"1 of {len(TABLES)} tables failed.*raw_orders"):
        run(environment, data_dir)
    after = counts(block)
    assert after["raw_orders"] == before["raw_orders"]
    assert after["raw_items"] > before["raw_items"]  # the other tables still loaded
    assert staging_tables_another_connection_sees(block) == []
    monkeypatch.setattr(pipeline.loading, "publish", real_publish)
    run(environment, data_dir)
    assert counts(block) == expected_counts(data_dir)


def test_incremental_rows_stage_in_a_table_no_other_connection_sees(
    loaded_then_grown: Warehouse,
    environment: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block = loaded_then_grown
    seen: dict[str, tuple[int, list[Any]]] = {}
    real_merge_into = pipeline.loading.merge_into

    def observed(warehouse: Warehouse, source: Any, staging_table: str, staged: Staged) -> Any:
        staged_rows = warehouse.query(f"SELECT COUNT(*) FROM {staging_table}")[0][0]
        seen[source.name] = (staged_rows, staging_tables_another_connection_sees(block))
        return real_merge_into(warehouse, source, staging_table, staged)

    monkeypatch.setattr(pipeline.loading, "merge_into", observed)
    with mock.patch.object(
        pandas_tools, "write_pandas", wraps=pandas_tools.write_pandas
    ) as write_pandas:
        run(environment, data_dir)
    assert set(seen) == {"raw_customers", "raw_orders", "raw_items"}
    assert all(rows > 0 for rows, _ in seen.values()), seen
    if block.dialect == "snowflake":
        # fakesnow keeps every table in one catalog for all connections (Snowflake keeps
        # temporary ones per session), so there the check is that staging is asked temporary.
        staging = [c.kwargs["table_type"] for c in write_pandas.call_args_list
                   if "__STAGING_" in c.args[2]]  # fmt: skip
        assert staging and set(staging) == {"temp"}, staging
    else:
        assert all(visible == [] for _, visible in seen.values()), seen
    assert counts(block) == expected_counts(data_dir)


def _rewrite_csv(path: Path, transform: Any) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(transform(lines)) + "\n")


def _retype_subtotal(path: Path) -> None:
    table = pq.read_table(path)
    index = table.schema.get_field_index("subtotal")
    pq.write_table(
        table.set_column(index, "subtotal", pc.cast(table["subtotal"], pa.string())), path
    )


def _order_in_far_future(path: Path) -> None:
    table = pq.read_table(path)
    index = table.schema.get_field_index("ordered_at")
    times = table["ordered_at"].to_pylist()
    times[-1] = datetime(9999, 12, 31)
    pq.write_table(table.set_column(index, "ordered_at", pa.array(times, pa.timestamp("us"))), path)


BAD_INPUTS = {
    "missing file": ("raw_products", lambda d: (d / "raw_products.csv").unlink(), "no file found"),
    "malformed row": (
        "raw_products",
        lambda d: _rewrite_csv(d / "raw_products.csv", lambda ls: [*ls, '"JAF-999","Extra"']),
        "Row #",
    ),
    "type changed": (
        "raw_orders",
        lambda d: _retype_subtotal(d / "raw_orders.parquet"),
        "column 'subtotal' is string, declared int64",
    ),
    "new column": (
        "raw_products",
        lambda d: _rewrite_csv(
            d / "raw_products.csv",
            lambda ls: [ls[0] + ',"calories"', *(line + ",350" for line in ls[1:])],
        ),
        "new ['calories']",
    ),
    "dropped column": (
        "raw_stores",
        lambda d: _rewrite_csv(
            d / "raw_stores.csv", lambda ls: [",".join(line.split(",")[:3]) for line in ls]
        ),
        "missing ['tax_rate']",
    ),
    "null primary key": (
        "raw_stores",
        lambda d: _rewrite_csv(d / "raw_stores.csv", lambda ls: [*ls, ',"No Id",,0.05']),
        "null primary key (id)",
    ),
    "duplicate primary key": (
        "raw_supplies",
        lambda d: _rewrite_csv(d / "raw_supplies.csv", lambda ls: [*ls, ls[1]]),
        "duplicate primary key (id, sku)",
    ),
    "far-future cursor": (
        "raw_orders",
        lambda d: _order_in_far_future(d / "raw_orders.parquet"),
        "ordered_at = 9999-12-31 00:00:00",
    ),
    "header only": (
        "raw_stores",
        lambda d: _rewrite_csv(d / "raw_stores.csv", lambda ls: ls[:1]),
        "holds no rows (an empty file, or a header only)",
    ),
    "duplicate ascending key": (
        "raw_stores",
        lambda d: _rewrite_csv(d / "raw_stores.csv", lambda ls: [*ls, ls[-1]]),
        "id=6 (2 times)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_its_table_with_a_clear_message_and_the_others_load(
    warehouse: tuple[Warehouse, ConnectionLog],
    environment: str,
    data_dir: Path,
    tmp_path: Path,
    case: str,
) -> None:
    block, _ = warehouse
    table, break_it, expected = BAD_INPUTS[case]
    run(environment, data_dir)
    before = counts(block)
    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    generate_jaffle_shop(broken, days=4, **SMALL)
    break_it(broken)
    with pytest.raises(ExtractLoadError) as failed:
        run(environment, broken)
    message = str(failed.value)
    assert f"1 of {len(TABLES)} tables failed" in message
    assert table in message and expected in message
    assert str(broken) in message  # names the file
    after = counts(block)
    assert after[table] == before[table]
    assert after["raw_items"] > before["raw_items"]


def key_check(key: tuple[str, ...], *batches: dict[str, list[Any]]) -> KeyCheck:
    keys = KeyCheck(key)
    for batch in batches:
        keys.see(pa.record_batch(batch))
    return keys


def test_key_check_proves_unique_only_a_single_key_that_strictly_ascends() -> None:
    assert key_check(("id",), {"id": [1, 2, 5]}, {"id": [6, 9]}).unique
    assert key_check(("sku",), {"sku": ["a", "b"]}, {"sku": ["c"]}).unique
    assert not key_check(("id",), {"id": [1, 2, 5]}, {"id": [5, 9]}).unique  # across batches
    assert not key_check(("id",), {"id": [1, 1, 2]}).unique
    assert not key_check(("id",), {"id": [3, 1, 2]}).unique  # maybe unique: SQL decides
    assert not key_check(("id", "sku"), {"id": [1, 2], "sku": ["a", "b"]}).unique


def test_key_check_counts_rows_with_any_null_key_column() -> None:
    keys = key_check(("id", "sku"), {"id": [1, None, None], "sku": ["a", None, "c"]})
    assert keys.nulls == 2
    assert not key_check(("id",), {"id": [1, None, 3]}).unique


def test_watermark_after_a_load_is_the_higher_of_the_table_and_the_staged_rows() -> None:
    before, staged = datetime(2025, 1, 5), Staged(["id"], KeyCheck(("id",)), "ordered_at")
    assert watermark_after(before, staged, merged=True) == before  # nothing staged
    staged.rows, staged.highest = 2, datetime(2025, 1, 3)
    assert watermark_after(before, staged, merged=True) == before  # a backfill of older rows
    assert watermark_after(datetime(2025, 1, 1), staged, merged=True) == staged.highest
    assert watermark_after(before, staged, merged=False) == staged.highest  # replaced


def test_load_error_names_table_and_fix() -> None:
    error = LoadError("raw_orders", "duplicate primary key (id) in x.csv: id=1 (2 times)")
    assert str(error).startswith("raw_orders: duplicate primary key")


def test_default_mode_opens_exactly_one_connection(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    _, connections = warehouse
    run(environment, data_dir)
    assert len(connections.opened) == 1
    assert connections.all_closed


def test_parallel_mode_checks_the_tables_on_one_connection_then_opens_one_per_table_it_loads(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    block, connections = warehouse
    run(environment, data_dir, parallel=True)
    assert len(connections.opened) == 1 + len(TABLES)
    assert connections.all_closed
    assert counts(block) == expected_counts(data_dir)


def test_each_run_publishes_a_markdown_summary_artifact(environment: str, data_dir: Path) -> None:
    run(environment, data_dir)
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()  # type: ignore[attr-defined]
    summaries = [a for a in artifact if a.key == "extract-load-summary"]
    assert summaries, "no extract-load-summary artifact"
    markdown = str(summaries[0].data)
    assert "| raw_orders | incremental |" in markdown
    assert "watermark after" in markdown


@pytest.mark.parametrize("warehouse", ["snowflake"], indirect=True)
def test_snowflake_sessions_carry_a_query_tag_naming_the_flow_run(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    _, connections = warehouse
    extract_load.with_options(flow_run_name="nightly-load-42")(
        environment=environment, data_dir=str(data_dir)
    )
    tag = connections.settings[0]["session_parameters"]["QUERY_TAG"]
    assert tag == "prefect-elt:nightly-load-42"


def test_unchanged_full_refresh_files_are_not_reloaded_and_changed_ones_are(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    block, _ = warehouse
    run(environment, data_dir)
    again = {r.table: r for r in run(environment, data_dir)}
    assert again["raw_stores"].mode == "unchanged"
    assert again["raw_stores"].rows_read == 0
    _rewrite_csv(
        data_dir / "raw_stores.csv", lambda ls: [line.replace("Brooklyn", "Queens") for line in ls]
    )
    changed = {r.table: r for r in run(environment, data_dir)}
    assert changed["raw_stores"].mode == "full refresh"
    with block.fresh() as own:
        assert own.query(f"SELECT name FROM {own.qualified('raw_stores')} WHERE id = 2") == [
            ("Queens",)
        ]


def test_only_the_tables_whose_files_changed_get_a_load_task_run(
    environment: str, data_dir: Path
) -> None:
    run(environment, data_dir)
    _rewrite_csv(
        data_dir / "raw_stores.csv", lambda ls: [line.replace("Brooklyn", "Queens") for line in ls]
    )
    # Each call of the task is a task run (counted here: the server records them after the fact).
    with mock.patch.object(flows.extract_load, "load_table", side_effect=load_table) as task:
        results = {load.table: load.mode for load in run(environment, data_dir)}
    assert [call.args[1].name for call in task.call_args_list] == ["raw_stores"]
    assert results == {table: "unchanged" for table in TABLES} | {"raw_stores": "full refresh"}


def test_new_customers_load_incrementally(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    block, _ = warehouse
    run(environment, data_dir)
    before = parquet_rows(data_dir / "raw_customers.parquet")
    generate_jaffle_shop(data_dir, days=5, **SMALL)
    new = parquet_rows(data_dir / "raw_customers.parquet") - before
    customers = {r.table: r for r in run(environment, data_dir)}["raw_customers"]
    assert customers.mode == "incremental"
    assert customers.inserted == new
    assert customers.rows_read <= new + 1  # the new ones plus the watermark's instant
    assert counts(block) == expected_counts(data_dir)


def test_files_loaded_before_are_skipped_by_content_or_by_modification_time(
    warehouse: tuple[Warehouse, ConnectionLog], environment: str, data_dir: Path
) -> None:
    block, _ = warehouse
    run(environment, data_dir)
    generate_jaffle_shop(data_dir, days=3, **SMALL)  # every file rewritten with the same rows
    rewritten = {r.table: r for r in run(environment, data_dir)}
    assert rewritten["raw_stores"].mode == "unchanged"  # same bytes
    assert rewritten["raw_orders"].mode == "incremental"  # cursor files go by size and time
    untouched = {r.table: r for r in run(environment, data_dir)}
    assert {r.mode for r in untouched.values()} == {"unchanged"}
    assert sum(r.rows_read for r in untouched.values()) == 0
    assert counts(block) == expected_counts(data_dir)


def test_a_backfill_does_not_mark_the_files_as_loaded(
    loaded_then_grown: Warehouse, environment: str, data_dir: Path
) -> None:
    block = loaded_then_grown
    start, end = datetime(2025, 1, 2), datetime(2025, 1, 2, 23, 59, 59)
    run(environment, data_dir, backfill_start=start, backfill_end=end)
    assert counts(block)["raw_orders"] < expected_counts(data_dir)["raw_orders"]
    after = {r.table: r for r in run(environment, data_dir)}
    assert after["raw_orders"].mode == "incremental"
    assert counts(block) == expected_counts(data_dir)


def test_rows_loaded_with_an_untrusted_cursor_are_named_in_the_result_artifact_and_alert(
    warehouse: tuple[Warehouse, ConnectionLog],
    environment: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    block, _ = warehouse
    orders = replace(JAFFLE_SHOP.source("raw_orders"), on_untrusted_cursor="load and report")
    monkeypatch.setitem(DATASETS, "orders_reported", Dataset("orders_reported", (orders,)))
    _order_in_far_future(data_dir / "raw_orders.parquet")
    with caplog.at_level("ERROR", logger="prefect.elt.alerts"):
        [loaded] = run(environment, data_dir, dataset="orders_reported")
    [row] = loaded.untrusted_rows
    assert (row.file, row.value) == (str(data_dir / "raw_orders.parquet"), datetime(9999, 12, 31))
    assert loaded.watermark_after < datetime(9999, 1, 1)
    assert counts(block) == {"raw_orders": expected_counts(data_dir)["raw_orders"]}
    markdown = str(latest_artifact("extract-load-summary").data)
    assert "1 rows with an untrusted cursor loaded" in markdown
    assert f"| raw_orders | {row.file} | {row.row} | {row.key} | ordered_at = 9999-12-31" in (
        markdown
    )
    [alert] = [r.getMessage() for r in caplog.records if r.name == "prefect.elt.alerts"]
    assert "Completed, with rows to check" in alert and str(row) in alert


def test_a_transient_error_is_retried_and_the_table_loads_but_bad_data_is_tried_once(
    warehouse: tuple[Warehouse, ConnectionLog],
    environment: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block, _ = warehouse
    attempts: dict[str, int] = {}
    real_publish = pipeline.loading.publish

    def flaky(warehouse: Warehouse, source: Any, *args: Any) -> Any:
        attempts[source.name] = attempts.get(source.name, 0) + 1
        if source.name == "raw_orders" and attempts[source.name] == 1:
            raise ConnectionError("connection reset by peer")
        if source.name == "raw_stores":
            raise LoadError(source.name, "bad rows")
        return real_publish(warehouse, source, *args)

    monkeypatch.setattr(pipeline.loading, "publish", flaky)
    # The same task without the 10 s wait: the delays are the production task's.
    assert load_table.retries == 3 and load_table.retry_delay_seconds == [10, 20, 40]
    monkeypatch.setattr(flows.extract_load, "load_table",
                        load_table.with_options(retry_delay_seconds=0))  # fmt: skip
    with pytest.raises(ExtractLoadError, match=r"1 of \d+ tables failed.*raw_stores: bad rows"):
        run(environment, data_dir)
    assert (attempts["raw_orders"], attempts["raw_stores"]) == (2, 1)
    assert counts(block)["raw_orders"] == expected_counts(data_dir)["raw_orders"]


def test_a_load_uses_the_facts_its_check_gathered_and_a_retry_gathers_them_anew(
    environment: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gathered: dict[str, int] = {}
    real_gather, real_publish = pipeline.loading.gather_facts, pipeline.loading.publish
    failed: set[str] = set()

    def counted(warehouse: Warehouse, source: Any, *args: Any) -> Any:
        gathered[source.name] = gathered.get(source.name, 0) + 1
        return real_gather(warehouse, source, *args)

    def fails_once(warehouse: Warehouse, source: Any, *args: Any) -> Any:
        if source.name == "raw_orders" and not failed:
            failed.add(source.name)
            raise ConnectionError("connection reset by peer")
        return real_publish(warehouse, source, *args)

    monkeypatch.setattr(pipeline.loading, "gather_facts", counted)
    monkeypatch.setattr(pipeline.loading, "publish", fails_once)
    monkeypatch.setattr(flows.extract_load, "load_table",
                        load_table.with_options(retry_delay_seconds=0))  # fmt: skip
    run(environment, data_dir)
    # Gathered once by the flow's check; again only for the retry (a failed attempt can leave
    # staging debris, which gathering drops).
    assert gathered == {table: 1 for table in TABLES} | {"raw_orders": 2}


TRANSIENT = {
    "a dropped connection": (ConnectionError("connection reset by peer"), True),
    "a timeout": (TimeoutError("timed out"), True),
    "DuckDB's file locked by another process": (duckdb.IOException("Could not set lock"), True),
    "Snowflake unreachable": (sf_errors.OperationalError("250001: Could not connect"), True),
    "Snowflake's 503": (sf_errors.ServiceUnavailableError(), True),
    "a store out of reach": (SourceError("t", "s3://b/k", "cannot read it", transient=True), True),
    "a malformed file": (SourceError("t", "f.csv", "Row #3: expected 4 columns"), False),
    "bad rows": (LoadError("t", "duplicate primary key"), False),
    "bad SQL": (sf_errors.ProgrammingError("SQL compilation error"), False),
    "a DuckDB constraint": (duckdb.ConstraintException("NOT NULL constraint failed"), False),
    "a bug": (TypeError("unsupported operand"), False),
}


@pytest.mark.parametrize("case", list(TRANSIENT))
def test_only_errors_a_retry_could_clear_are_retried(case: str) -> None:
    error, retried = TRANSIENT[case]
    assert is_transient(error) is retried
    assert retry_if_transient(load_table, None, Failed(data=error)) is retried
