"""The main job end to end on the embedded default: load, dbt build and test, artifacts, alerts."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter
from prefect.events.filters import (
    EventAnyResourceFilter,
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
)

from blocks import DbtCoreTransform, DuckDBWarehouse
from demo.data import generate_jaffle_shop
from flows.elt import elt
from flows.transform import transform
from pipeline.dbt_core import DbtCoreError, DbtFreshnessError
from pipeline.transform_result import NodeStatus
from tests.conftest import REPO_ROOT
from tests.support.artifacts import latest_artifact
from tests.support.environments import save_embedded_environment

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    """A local environment of its own: DuckDB file, the repository's dbt project, console alerts."""
    root = tmp_path_factory.mktemp("elt")
    name, warehouse = save_embedded_environment("e2e", root)
    data = root / "jaffle"
    generate_jaffle_shop(data, days=5, orders_per_day_at_start=60)
    loads, built = asyncio.run(elt(environment=name, data_dir=str(data)))
    return {"name": name, "warehouse": warehouse, "data": data, "loads": loads, "built": built}


def repository_dbt(**fields: Any) -> DbtCoreTransform:
    """A dbt Core block on the repository's dbt project, two threads."""
    dbt = str(REPO_ROOT / "dbt")
    return DbtCoreTransform(project_dir=dbt, profiles_dir=dbt, threads=2, **fields)


def query(warehouse: DuckDBWarehouse, sql: str) -> list[tuple[Any, ...]]:
    with warehouse.fresh() as own:
        return own.query(sql)


def test_marts_have_one_row_per_generated_order_item_and_customer(
    environment: dict[str, Any],
) -> None:
    warehouse, data = environment["warehouse"], environment["data"]
    orders = pq.ParquetFile(data / "raw_orders.parquet").metadata.num_rows
    items = pq.ParquetFile(data / "raw_items.parquet").metadata.num_rows
    customers = pq.ParquetFile(data / "raw_customers.parquet").metadata.num_rows
    assert query(warehouse, "SELECT COUNT(*) FROM analytics.orders") == [(orders,)]
    assert query(warehouse, "SELECT COUNT(*) FROM analytics.order_items") == [(items,)]
    assert query(warehouse, "SELECT COUNT(*) FROM analytics.customers") == [(customers,)]
    assert query(warehouse, "SELECT SUM(count_lifetime_orders) FROM analytics.customers") == [
        (orders,)
    ]


def test_dbt_built_every_model_and_passed_every_test(environment: dict[str, Any]) -> None:
    built = environment["built"]
    assert built.runner == "dbt Core"
    assert built.counts["models"] == 12
    assert built.counts["tests_passed"] >= 40
    assert built.counts["tests_failed"] == 0


def test_the_run_publishes_summary_and_dbt_results_artifacts(environment: dict[str, Any]) -> None:
    summary = str(latest_artifact("elt-summary").data)
    assert "12 models built" in summary and "| raw_orders | incremental |" in summary
    results = latest_artifact("dbt-core-results").data
    assert "model.jaffle_shop.customers" in str(results)


def test_a_rerun_without_new_rows_builds_no_model_and_says_why(
    environment: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="prefect.client")
    loads, built = asyncio.run(
        elt(environment=environment["name"], data_dir=str(environment["data"]))
    )
    # Stock Prefect 3.8 on SQLite answered this run's transform subflow 503 (its task-run
    # recorder wrote in between) and the client retried ~2 s later: deployments/sqlite_server.py.
    busy = [r.getMessage() for r in caplog.records if "retryable" in r.getMessage()]
    assert busy == [], busy
    assert {load.mode for load in loads} == {"unchanged"}
    assert (built.scope, built.nodes) == ("nothing", [])
    summary = str(latest_artifact("elt-summary").data)
    assert "nothing rebuilt: no source received rows since the last complete build" in summary


def test_new_orders_rebuild_what_orders_feed_and_leave_products_locations_supplies(
    environment: dict[str, Any],
) -> None:
    built = asyncio.run(transform(environment["name"], ["raw_orders", "raw_items"]))
    models = {node.unique_id.split(".")[-1] for node in built.nodes if node.is_model}
    assert {"stg_orders", "stg_order_items", "orders", "order_items", "customers"} <= models
    assert not models & {"products", "locations", "supplies", "stg_products", "stg_supplies"}
    assert (built.scope, built.counts["tests_failed"]) == ("downstream", 0)


def test_the_dbt_core_blocks_run_returns_dbts_typed_results(environment: dict[str, Any]) -> None:
    block = repository_dbt()
    result = block.run(environment["warehouse"])
    assert (result.runner, result.counts["models"], result.counts["tests_failed"]) == (
        "dbt Core", 12, 0,
    )  # fmt: skip
    statuses = {node.unique_id: node.status for node in result.nodes}
    assert statuses["model.jaffle_shop.customers"] is NodeStatus.PASSED
    assert (
        statuses["source.jaffle_shop.jaffle_shop.raw_orders"] is NodeStatus.PASSED
    )  # freshness gate
    assert [name for name, _ in result.artifact_links] == ["run_results.json", "manifest.json"]
    assert result.seconds > 0


def test_the_dbt_core_blocks_run_raises_naming_the_failed_test_with_its_results(
    environment: dict[str, Any],
) -> None:
    block = repository_dbt(command="build --select stg_orders", freshness_gate=False)
    warehouse = environment["warehouse"]
    with warehouse.fresh() as own:
        own.execute("INSERT INTO raw.raw_orders SELECT * FROM raw.raw_orders LIMIT 1")
    try:
        with pytest.raises(DbtCoreError) as failed:
            block.run(warehouse)
    finally:
        with warehouse.fresh() as own:
            own.execute(
                "DELETE FROM raw.raw_orders WHERE rowid = (SELECT MAX(rowid) FROM raw.raw_orders)"
            )
    result = failed.value.result
    assert "test.jaffle_shop.unique_stg_orders_order_id" in str(failed.value)
    assert result.failures[0].startswith("test.jaffle_shop.unique_stg_orders_order_id")
    assert result.counts["tests_failed"] >= 1
    assert result.counts["models"] == 1
    # Outside a flow run nothing is retried: the next call runs its own command, which passes.
    again = block.run(warehouse)
    assert (again.scope, again.counts["tests_failed"], again.counts["models"]) == (
        "everything", 0, 1,
    )  # fmt: skip


def test_dbt_builds_into_the_transform_schema_the_warehouse_block_names(
    environment: dict[str, Any],
) -> None:
    # The model alone: its tests read models built elsewhere.
    block = repository_dbt(command="run --select stg_supplies")
    warehouse = DuckDBWarehouse(path=environment["warehouse"].path, transform_schema="marts_spec")
    assert block.run(warehouse).counts["models"] == 1
    found = "SELECT table_schema FROM information_schema.tables WHERE table_name = 'stg_supplies'"
    assert ("marts_spec",) in query(environment["warehouse"], found)


def test_the_freshness_gate_stops_before_the_build_naming_the_stale_source(
    environment: dict[str, Any],
) -> None:
    block = repository_dbt(command="build --select stg_supplies", freshness_gate=True)
    warehouse = environment["warehouse"]
    stale = "UPDATE raw.raw_supplies SET _loaded_at = _loaded_at {} INTERVAL 3 DAY"
    with warehouse.fresh() as own:
        own.execute(stale.format("-"))  # past the source's 48-hour error_after
    try:
        with pytest.raises(DbtFreshnessError) as failed:
            block.run(warehouse)
    finally:
        with warehouse.fresh() as own:
            own.execute(stale.format("+"))
    assert "source.jaffle_shop.jaffle_shop.raw_supplies" in str(failed.value)
    assert failed.value.result.counts["models"] == 0


def test_a_broken_dbt_test_fails_the_flow_alerts_once_and_lists_the_test_first(
    environment: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    warehouse = environment["warehouse"]
    with warehouse.fresh() as own:
        own.execute("INSERT INTO raw.raw_orders SELECT * FROM raw.raw_orders LIMIT 1")
    try:
        with caplog.at_level("ERROR", logger="prefect.elt.alerts"):
            state = asyncio.run(transform(environment=environment["name"], return_state=True))
    finally:
        with warehouse.fresh() as own:
            own.execute(
                "DELETE FROM raw.raw_orders WHERE rowid = (SELECT MAX(rowid) FROM raw.raw_orders)"
            )
    assert state.is_failed()
    assert "unique_stg_orders_order_id" in (state.message or "")
    alerts = [r.getMessage() for r in caplog.records if r.name == "prefect.elt.alerts"]
    assert len(alerts) == 1 and "unique_stg_orders_order_id" in alerts[0]
    first = latest_artifact("dbt-core-results").data
    assert "unique_stg_orders_order_id" in str(first).split("},")[0]


def test_a_retry_of_a_failed_transform_reruns_only_what_failed_or_was_skipped(
    environment: dict[str, Any],
) -> None:
    warehouse = environment["warehouse"]
    with warehouse.fresh() as own:
        own.execute("INSERT INTO raw.raw_orders SELECT * FROM raw.raw_orders LIMIT 1")
    try:
        state = asyncio.run(transform(environment=environment["name"], return_state=True))
    finally:
        with warehouse.fresh() as own:
            own.execute(
                "DELETE FROM raw.raw_orders WHERE rowid = (SELECT MAX(rowid) FROM raw.raw_orders)"
            )
    retried = state.result(raise_on_failure=False).result
    assert retried.scope == "retry"
    assert "test.jaffle_shop.unique_stg_orders_order_id" in retried.failures[0]
    passed = {node.unique_id for node in retried.nodes if node.status is NodeStatus.PASSED}
    assert "model.jaffle_shop.products" not in passed  # built in the failed attempt, not again
    assert {node.status for node in retried.nodes} <= {NodeStatus.FAILED, NodeStatus.SKIPPED}


def test_only_the_elt_run_sends_heartbeats_its_subflows_share_its_process(
    environment: dict[str, Any],
) -> None:
    """Each heartbeat thread costs its flow run up to 1 s at exit; one per process is enough."""
    with get_client(sync_client=True) as client:
        roots = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["elt"])))
        root = min(
            (run for run in roots if run.parameters.get("environment") == environment["name"]),
            key=lambda run: run.created or 0,
        )
        subflows = [
            run.id
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [root.id]})  # type: ignore[arg-type]
            )
        ]
        assert len(subflows) == 2  # extract-load and transform
        runs = [root.id, *subflows]
        deadline = time.monotonic() + 60
        beating: set[str] = set()
        while time.monotonic() < deadline:
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                    any_resource=EventAnyResourceFilter(id=[f"prefect.flow-run.{r}" for r in runs]),
                    occurred=EventOccurredFilter(since=root.created),  # type: ignore[arg-type]
                ),
                limit=50,  # the server's maximum (the client's default, 100, is refused)
            )
            beating = {event.resource.id.removeprefix("prefect.flow-run.") for event in page.events}
            if beating:
                break
            time.sleep(1)
    assert beating == {str(root.id)}
