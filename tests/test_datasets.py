"""Datasets are declared once: the registry finds them by name, their sources land under any
root, and the demo data and the dbt sources agree with the declaration."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from demo.data import generate_jaffle_shop
from pipeline.datasets import DATASETS, Dataset, dataset
from pipeline.datasets.jaffle_shop import JAFFLE_SHOP
from pipeline.loading import LOADED_AT
from pipeline.sources import Source
from tests.conftest import REPO_ROOT
from tests.support.raw_tables import sql_type

ORDERS = JAFFLE_SHOP.source("raw_orders")
DBT_SOURCES = REPO_ROOT / "dbt" / "models" / "staging" / "__sources.yml"


def test_a_dataset_is_found_by_name() -> None:
    assert dataset("jaffle_shop") is JAFFLE_SHOP


def test_an_unknown_dataset_names_the_known_ones_and_how_to_add_one() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'shop'; known datasets: jaffle_shop"):
        dataset("shop")
    with pytest.raises(ValueError, match=r"pipeline/datasets/.*DATASETS"):
        dataset("shop")


def test_a_table_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"dataset twice: tables \['raw_orders'\] are declared"):
        Dataset("twice", (ORDERS, ORDERS))


@pytest.mark.parametrize(
    "root",
    ["data/jaffle", "data/jaffle/", "s3://acme-raw/jaffle-shop", "https://host.example/jaffle"],
)
def test_sources_are_the_declared_locations_under_the_root(root: str) -> None:
    sources = JAFFLE_SHOP.sources(root)
    assert [s.location for s in sources] == [
        f"{root.rstrip('/')}/{declared.location}" for declared in JAFFLE_SHOP.declared
    ]
    assert [s.name for s in sources] == JAFFLE_SHOP.table_names


def test_a_source_declared_at_an_absolute_location_stays_there() -> None:
    elsewhere = Source(
        "raw_orders", "gs://other/orders/*.parquet", "parquet", ORDERS.schema, ("id",)
    )
    assert Dataset("mixed", (elsewhere,)).sources("s3://acme-raw")[0].location == elsewhere.location


def test_a_chosen_format_changes_the_file_extension_and_keeps_the_rest() -> None:
    sources = {s.name: s for s in JAFFLE_SHOP.sources("/data", {"raw_orders": "jsonl"})}
    orders = sources["raw_orders"]
    assert (orders.location, orders.format) == ("/data/raw_orders.jsonl", "jsonl")
    assert (orders.schema, orders.primary_key, orders.cursor) == (
        ORDERS.schema,
        ORDERS.primary_key,
        ORDERS.cursor,
    )
    assert sources["raw_items"].format == "parquet"


def test_formats_for_undeclared_tables_are_refused_naming_the_declared_ones() -> None:
    with pytest.raises(ValueError, match=r"undeclared tables \['raw_order'\]; its tables are"):
        JAFFLE_SHOP.sources("/data", {"raw_order": "csv"})


def test_the_demo_writes_every_declared_table_where_and_as_the_declaration_reads_it(
    tmp_path: Path,
) -> None:
    generate_jaffle_shop(tmp_path, days=1, orders_per_day_at_start=5)
    for source in JAFFLE_SHOP.sources(tmp_path):
        path = Path(source.location)
        if source.format == "parquet":
            written = pq.read_schema(path)
        else:
            convert = pacsv.ConvertOptions(column_types=source.schema)
            written = pacsv.read_csv(path, convert_options=convert).schema
        assert written.equals(source.schema), source.name


@pytest.mark.parametrize("name", list(DATASETS))
def test_the_dbt_sources_list_every_declared_table_with_its_columns(name: str) -> None:
    declared = {s.name: [*s.schema.names, LOADED_AT] for s in dataset(name).declared}
    dbt_sources = yaml.safe_load(DBT_SOURCES.read_text())["sources"]
    matching = [source for source in dbt_sources if source["name"] == name]
    assert matching, f"add a source named {name} to {DBT_SOURCES.relative_to(REPO_ROOT)}"
    listed = {
        table["name"]: [column["name"] for column in table.get("columns", [])]
        for table in matching[0]["tables"]
    }
    differences = [
        f"{table}: dbt lists {listed.get(table)}, declared {declared.get(table)}"
        for table in sorted(set(declared) | set(listed))
        if listed.get(table) != declared.get(table)
    ]
    assert not differences, "\n".join(differences)


def test_every_declared_column_type_has_a_sql_type() -> None:
    types = [sql_type(field.type) for field in ORDERS.schema]
    assert types[:3] == ["BIGINT", "BIGINT", "TIMESTAMP"]
    with pytest.raises(ValueError, match=r"no SQL type for Arrow binary; add it to sql_type"):
        sql_type(pa.binary())
