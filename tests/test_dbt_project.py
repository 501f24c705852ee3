"""The dbt project in dbt/: it builds on DuckDB from raw tables shaped as the dataset declares,
its tests catch broken raw rows, its sources are checked for freshness, the same SQL builds
for the Snowflake target (on fakesnow), and the Snowflake profile takes either credential.

dbt runs in-process (dbtRunner) against small hand-made raw data in temporary databases;
artifacts and logs go to temporary directories so the repository stays clean.
"""

from __future__ import annotations

import os
from argparse import Namespace
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import fakesnow
import numpy as np
import pytest
import snowflake.connector
import yaml
from dbt.cli.main import dbtRunner, dbtRunnerResult
from dbt.config.profile import Profile, read_profile
from dbt.config.renderer import ProfileRenderer
from dbt.flags import set_from_args
from dbt_common.context import set_invocation_context

from pipeline.datasets.jaffle_shop import JAFFLE_SHOP
from tests.conftest import REPO_ROOT
from tests.support.raw_tables import column_ddl

# Each case runs a real dbt parse or build: 1 to 8 s apiece.
pytestmark = pytest.mark.slow

DBT_DIR = REPO_ROOT / "dbt"
RAW = "raw"
MARTS = "analytics"

RAW_DDL = {source.name: column_ddl(source) for source in JAFFLE_SHOP.declared}
STORES = [
    (1, "Philadelphia", datetime(2016, 9, 1), 0.06),
    (2, "Brooklyn", datetime(2017, 3, 12), 0.04),
    (3, "Chicago", datetime(2018, 4, 29), 0.0625),
]
PRODUCTS = [
    ("JAF-001", "nutellaphone who dis?", "jaffle", 1100, "nutella and banana jaffle"),
    ("JAF-002", "doctor stew", "jaffle", 1100, "house-made beef stew jaffle"),
    ("JAF-003", "the krautback", "jaffle", 1200, "lamb and pork bratwurst with sauerkraut"),
    ("BEV-001", "tangaroo", "beverage", 600, "mango and tangerine smoothie"),
    ("BEV-002", "chai and mighty", "beverage", 500, "oatmilk chai latte"),
    ("BEV-003", "vanilla ice", "beverage", 600, "iced coffee with vanilla syrup"),
]
SUPPLIES = [  # (id, name, cost, perishable): a napkin goes with every product
    ("SUP-001", "napkin", 4, False),
    ("SUP-002", "bread", 33, True),
    ("SUP-003", "16oz compostable clear cup", 13, False),
]
CUSTOMERS = 20
ORDERS = 50
ORDERING_CUSTOMERS = 16  # customers 17..20 have not ordered yet: they must still be in the mart


@dataclass(frozen=True)
class RawData:
    """Row counts and totals of the raw tables, to check the marts against."""

    rows: dict[str, int]
    order_total_cents: int


def utc_now() -> datetime:
    """Naive UTC, as the loader writes `_loaded_at`."""
    return datetime.now(UTC).replace(tzinfo=None)


def raw_rows(seed: int = 7) -> dict[str, list[tuple[Any, ...]]]:
    """A small consistent jaffle shop: prices sum to subtotals, tax follows the store's rate."""
    rng = np.random.default_rng(seed)
    price = {sku: cents for sku, _, _, cents, _ in PRODUCTS}
    tax_rate = {store_id: rate for store_id, _, _, rate in STORES}
    supplies = [
        (sup, name, cost, perishable, sku)
        for sku, _, kind, *_ in PRODUCTS
        for sup, name, cost, perishable in SUPPLIES
        if sup == "SUP-001" or (sup == "SUP-002") == (kind == "jaffle")
    ]
    start = datetime(2024, 3, 1, 8)
    orders, items = [], []
    for order_id in range(1, ORDERS + 1):
        ordered_at = start + timedelta(hours=int(rng.integers(0, 24 * 30)))
        store_id = int(rng.integers(1, len(STORES) + 1))
        skus = rng.choice([sku for sku, *_ in PRODUCTS], size=int(rng.integers(1, 4)))
        for sku in skus:
            items.append((len(items) + 1, order_id, str(sku), ordered_at))
        subtotal = sum(price[str(sku)] for sku in skus)
        tax_paid = round(subtotal * tax_rate[store_id])
        customer = int(rng.integers(1, ORDERING_CUSTOMERS + 1))
        orders.append(
            (order_id, customer, ordered_at, store_id, subtotal, tax_paid, subtotal + tax_paid)
        )
    return {
        "raw_stores": STORES,
        "raw_customers": [(i, f"Customer {i}", start) for i in range(1, CUSTOMERS + 1)],
        "raw_products": PRODUCTS,
        "raw_supplies": supplies,
        "raw_orders": orders,
        "raw_items": items,
    }


def load_raw(cursor: Any, schema: str, placeholder: str = "?") -> RawData:
    """Create the six raw tables through a DB-API cursor, every row stamped `_loaded_at` = now."""
    loaded_at = utc_now()
    rows = raw_rows()
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table, ddl in RAW_DDL.items():
        cursor.execute(f"CREATE OR REPLACE TABLE {schema}.{table} ({ddl}, _loaded_at TIMESTAMP)")
        values = ", ".join([placeholder] * (ddl.count(",") + 2))
        cursor.executemany(
            f"INSERT INTO {schema}.{table} VALUES ({values})",
            [(*row, loaded_at) for row in rows[table]],
        )
    return RawData(
        rows={table: len(table_rows) for table, table_rows in rows.items()},
        order_total_cents=sum(order[-1] for order in rows["raw_orders"]),
    )


def make_raw_warehouse(path: Path) -> RawData:
    """A DuckDB file holding the raw tables in the `raw` schema, as the loader leaves it."""
    with duckdb.connect(str(path)) as conn:
        return load_raw(conn, RAW)


def dbt_env(duckdb_path: Path) -> dict[str, str]:
    """What the DuckDB warehouse block sets for a dbt run."""
    return {
        "ELT_DUCKDB_PATH": str(duckdb_path),
        "ELT_RAW_SCHEMA": RAW,
        "ELT_TRANSFORM_SCHEMA": MARTS,
        "ELT_DBT_THREADS": "2",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def run_dbt(args: list[str], env: dict[str, str], work_dir: Path) -> dbtRunnerResult:
    """`dbt <args>` in-process on the repository's project, artifacts and logs in work_dir."""
    command = [
        *args,
        "--project-dir", str(DBT_DIR),
        "--profiles-dir", str(DBT_DIR),
        "--target-path", str(work_dir / "target"),
        "--log-path", str(work_dir / "logs"),
    ]  # fmt: skip
    with mock.patch.dict(os.environ, env):
        return dbtRunner().invoke(command)


def statuses(result: dbtRunnerResult) -> dict[str, str]:
    """Node name -> status for a build or freshness result."""
    assert result.result is not None, f"dbt stopped before running: {result.exception}"
    return {r.node.name: str(r.status) for r in result.result.results}


def failing(result: dbtRunnerResult) -> set[str]:
    return {name for name, status in statuses(result).items() if status in {"fail", "error"}}


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path)) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One `dbt build` on fresh, clean raw data, shared by the specs below."""
    work = tmp_path_factory.mktemp("dbt-build")
    path = work / "warehouse.duckdb"
    raw = make_raw_warehouse(path)
    result = run_dbt(["build"], dbt_env(path), work)
    yield {"path": path, "raw": raw, "result": result, "work": work}


def broken_build(work: Path, breakage: str) -> dbtRunnerResult:
    """`dbt build` on the clean raw data with one SQL statement applied to it first."""
    path = work / "warehouse.duckdb"
    make_raw_warehouse(path)
    query(path, breakage)
    return run_dbt(["build"], dbt_env(path), work)


def test_build_succeeds_with_every_model_test_and_unit_test_passing(
    built: dict[str, Any],
) -> None:
    result = built["result"]
    found = statuses(result)
    assert result.success, f"dbt build failed: {result.exception or failing(result)}"
    assert {name for name, status in found.items() if status not in {"success", "pass"}} == set()
    kinds = [r.node.resource_type for r in result.result.results]
    assert kinds.count("model") == 12
    assert kinds.count("unit_test") >= 4
    assert kinds.count("test") >= 40


def test_marts_have_one_row_per_raw_row_of_their_grain(built: dict[str, Any]) -> None:
    path, rows = built["path"], built["raw"].rows
    for mart, raw_table in [
        ("orders", "raw_orders"),
        ("order_items", "raw_items"),
        ("customers", "raw_customers"),
        ("products", "raw_products"),
        ("locations", "raw_stores"),
        ("supplies", "raw_supplies"),
    ]:
        assert query(path, f"SELECT COUNT(*) FROM {MARTS}.{mart}") == [(rows[raw_table],)], mart


def test_customers_mart_adds_up_every_order_in_dollars(built: dict[str, Any]) -> None:
    path, raw = built["path"], built["raw"]
    (orders, spend), *_ = query(
        path, f"SELECT SUM(count_lifetime_orders), SUM(lifetime_spend) FROM {MARTS}.customers"
    )
    assert orders == raw.rows["raw_orders"]
    assert spend * 100 == raw.order_total_cents
    never_ordered = query(
        path,
        f"SELECT customer_type, count_lifetime_orders, lifetime_spend FROM {MARTS}.customers "
        f"WHERE customer_id > {ORDERING_CUSTOMERS}",
    )
    assert never_ordered == [("new", 0, 0)] * (CUSTOMERS - ORDERING_CUSTOMERS)


def test_a_duplicated_order_id_fails_the_unique_test_and_the_build(
    tmp_path: Path,
) -> None:
    result = broken_build(
        tmp_path, f"INSERT INTO {RAW}.raw_orders SELECT * FROM {RAW}.raw_orders LIMIT 1"
    )
    assert not result.success
    assert failing(result) == {"unique_stg_orders_order_id"}
    assert statuses(result)["orders"] == "skipped"


def test_an_item_of_a_missing_order_fails_the_relationship_test_and_the_build(
    tmp_path: Path,
) -> None:
    result = broken_build(
        tmp_path,
        f"INSERT INTO {RAW}.raw_items VALUES (9999, 9999, 'JAF-001', TIMESTAMP '2024-03-02', "
        "TIMESTAMP '2024-03-02')",
    )
    assert not result.success
    assert failing(result) == {"relationships_stg_order_items_order_id__order_id__ref_stg_orders_"}
    assert statuses(result)["order_items"] == "skipped"


def test_source_freshness_passes_on_freshly_loaded_raw_tables(built: dict[str, Any]) -> None:
    result = run_dbt(["source", "freshness"], dbt_env(built["path"]), built["work"])
    assert result.success, result.exception
    assert statuses(result) == {table: "pass" for table in RAW_DDL}


def test_source_freshness_fails_naming_a_raw_table_not_loaded_for_three_days(
    tmp_path: Path,
) -> None:
    path = tmp_path / "warehouse.duckdb"
    make_raw_warehouse(path)
    query(path, f"UPDATE {RAW}.raw_customers SET _loaded_at = _loaded_at - INTERVAL 3 DAY")
    result = run_dbt(["source", "freshness"], dbt_env(path), tmp_path)
    assert not result.success
    assert failing(result) == {"raw_customers"}


SNOWFLAKE_ENV = {
    "ELT_SNOWFLAKE_ACCOUNT": "xy12345.eu-central-1",
    "ELT_SNOWFLAKE_USER": "ELT_TRANSFORMER",
    "ELT_SNOWFLAKE_ROLE": "TRANSFORMER",
    "ELT_SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
    "ELT_SNOWFLAKE_DATABASE": "JAFFLE",
    "ELT_SNOWFLAKE_QUERY_TAG": "prefect-elt:test",
    "ELT_RAW_SCHEMA": "RAW",
    "ELT_TRANSFORM_SCHEMA": "ANALYTICS",
    "ELT_DBT_THREADS": "2",
    "ELT_SNOWFLAKE_PASSWORD": "not-a-secret",
}


def test_project_parses_for_the_snowflake_target_without_a_connection(tmp_path: Path) -> None:
    result = run_dbt(["parse", "--target", "snowflake"], SNOWFLAKE_ENV, tmp_path)
    assert result.success, result.exception
    manifest = result.result
    assert {source.schema for source in manifest.sources.values()} == {"RAW"}
    assert sum(node.resource_type == "model" for node in manifest.nodes.values()) == 12


def test_models_and_data_tests_build_for_the_snowflake_target_on_fakesnow(tmp_path: Path) -> None:
    # fakesnow runs Snowflake SQL on DuckDB: it proves that the Snowflake-dispatched macros
    # render runnable SQL, not that Snowflake itself accepts every statement. Unit tests are
    # left out: their temporary tables are beyond fakesnow.
    with fakesnow.patch():
        connection = snowflake.connector.connect(database="JAFFLE", schema="RAW")
        raw = load_raw(connection.cursor(), "RAW", placeholder="%s")
        result = run_dbt(
            ["build", "--target", "snowflake", "--exclude-resource-type", "unit_test"],
            SNOWFLAKE_ENV,
            tmp_path,
        )
        cursor = connection.cursor()
        cursor.execute("SELECT COUNT(*), SUM(lifetime_spend) FROM JAFFLE.ANALYTICS.customers")
        customers, spend = cursor.fetchone()
    assert result.success, f"dbt build failed: {result.exception or failing(result)}"
    assert set(statuses(result).values()) == {"success", "pass"}
    assert customers == raw.rows["raw_customers"]
    assert spend * 100 == raw.order_total_cents


def snowflake_credentials(env: dict[str, str]) -> Any:
    """The Snowflake target's credentials as dbt renders them from profiles.yml (no connection)."""
    set_from_args(Namespace(), None)
    with mock.patch.dict(os.environ, env):
        set_invocation_context(os.environ)
        profile = Profile.from_raw_profiles(
            read_profile(str(DBT_DIR)), "jaffle_shop", ProfileRenderer({}), "snowflake"
        )
    set_invocation_context({})
    return profile.credentials


def test_snowflake_profile_takes_an_encrypted_key_pair_without_a_password(
    encrypted_private_key_pem: tuple[str, str],
) -> None:
    key, passphrase = encrypted_private_key_pem
    env = {
        **SNOWFLAKE_ENV,
        "ELT_SNOWFLAKE_PASSWORD": "",
        "ELT_SNOWFLAKE_ROLE": "",
        "ELT_SNOWFLAKE_PRIVATE_KEY": key,
        "ELT_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": passphrase,
    }
    credentials = snowflake_credentials(env)
    auth = credentials.auth_args()
    assert "password" not in auth
    assert isinstance(auth["private_key"], bytes)  # decrypted with the passphrase
    assert credentials.role is None  # empty: the user's default role, not a role named ''
    assert (credentials.database, credentials.schema) == ("JAFFLE", "ANALYTICS")


def test_snowflake_profile_takes_a_password_without_a_key_and_keeps_digits_text() -> None:
    env = {**SNOWFLAKE_ENV, "ELT_SNOWFLAKE_PASSWORD": "20240101"}
    credentials = snowflake_credentials(env)
    auth = credentials.auth_args()
    assert auth["password"] == "20240101"
    assert auth["private_key"] is None
    assert (credentials.role, credentials.query_tag) == ("TRANSFORMER", "prefect-elt:test")


def test_profiles_yml_reads_every_snowflake_setting_from_its_elt_variable() -> None:
    outputs = yaml.safe_load((DBT_DIR / "profiles.yml").read_text())["jaffle_shop"]["outputs"]
    output = outputs["snowflake"]
    for key in ["account", "user", "password", "private_key", "private_key_passphrase",
                "role", "warehouse", "database", "query_tag"]:  # fmt: skip
        assert f"env_var('ELT_SNOWFLAKE_{key.upper()}'" in output[key], key
    for key in ["password", "private_key", "private_key_passphrase"]:
        assert f"env_var('ELT_SNOWFLAKE_{key.upper()}', '')" in output[key], key
