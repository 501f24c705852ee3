"""Source locations and formats: local globs, JSON lines, s3:// through Arrow's S3 client
(against moto's S3 server), https:// through fsspec (against a local HTTP file server)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blocks import DuckDBWarehouse
from demo.data import generate_jaffle_shop
from flows.extract_load import extract_load
from pipeline.datasets.jaffle_shop import JAFFLE_SHOP
from pipeline.loading import TableLoad, load_source
from pipeline.sources import Source, SourceError, read_batches, resolve_files
from tests.support.environments import save_embedded_environment
from tests.support.object_stores import s3_api, serving_directory, upload_directory

SMALL = {"orders_per_day_at_start": 40}
TABLES = JAFFLE_SHOP.table_names
ORDERS = JAFFLE_SHOP.schema("raw_orders")


def file_rows(data_dir: Path) -> dict[str, int]:
    """Rows per table as the generator wrote them, whatever the format."""
    rows = {}
    for file in data_dir.iterdir():
        table, suffix = file.stem, file.suffix
        if suffix == ".parquet":
            rows[table] = pq.ParquetFile(file).metadata.num_rows
        else:
            rows[table] = len(file.read_text().splitlines()) - (suffix == ".csv")
    return rows


def table_rows(warehouse: DuckDBWarehouse) -> dict[str, int]:
    with warehouse.fresh() as own:
        return {t: own.query(f"SELECT COUNT(*) FROM {own.qualified(t)}")[0][0] for t in TABLES}


def orders_source(location: str, fmt: Any = "parquet") -> Source:
    return Source("raw_orders", location, fmt, ORDERS, ("id",), "ordered_at")


def split_orders(data_dir: Path, out: Path, parts: int) -> int:
    """Write the orders as `parts` Parquet files named by part; return the row count."""
    orders = pq.read_table(data_dir / "raw_orders.parquet")
    out.mkdir(parents=True)
    size = -(-orders.num_rows // parts)
    for part in range(parts):
        pq.write_table(orders.slice(part * size, size), out / f"part-{part:02d}.parquet")
    return orders.num_rows


def test_json_lines_sources_load_like_csv_and_parquet(tmp_path: Path) -> None:
    formats: dict[str, Any] = {"raw_orders": "jsonl", "raw_stores": "jsonl", "raw_items": "csv"}
    data_dir = tmp_path / "jaffle"
    generate_jaffle_shop(data_dir, days=3, formats=formats, **SMALL)
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    with warehouse:
        for source in JAFFLE_SHOP.sources(data_dir, formats):
            load_source(warehouse, source)
    assert (data_dir / "raw_orders.jsonl").exists()
    assert table_rows(warehouse) == file_rows(data_dir)
    with warehouse:
        typed = warehouse.query("SELECT typeof(ordered_at), typeof(id) FROM raw.raw_orders LIMIT 1")
    assert typed == [("TIMESTAMP", "BIGINT")]


def test_a_local_glob_reads_every_matching_file_in_name_order(tmp_path: Path) -> None:
    generate_jaffle_shop(tmp_path / "jaffle", days=3, **SMALL)
    rows = split_orders(tmp_path / "jaffle", tmp_path / "orders", parts=3)
    source = orders_source(str(tmp_path / "orders" / "part-*.parquet"))
    assert [Path(f).name for f in resolve_files(source)] == [
        "part-00.parquet", "part-01.parquet", "part-02.parquet"
    ]  # fmt: skip
    ids = pa.concat_arrays([batch.column("id") for batch in read_batches(source)])
    assert len(ids) == rows and ids.to_pylist() == sorted(ids.to_pylist())


@dataclass
class ShopInS3:
    """The demo shop's files uploaded to a bucket of the S3 stand-in, and an environment."""

    s3: Any
    data_dir: Path
    environment: str
    warehouse: DuckDBWarehouse
    url: str = "s3://acme-raw/jaffle-shop"

    def upload(self) -> None:
        upload_directory(self.s3, "acme-raw", "jaffle-shop", self.data_dir)

    def load(self) -> list[TableLoad]:
        return extract_load(environment=self.environment, data_dir=self.url)


@pytest.fixture
def shop_in_s3(
    tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ShopInS3]:
    data_dir = tmp_path / "jaffle"
    generate_jaffle_shop(data_dir, days=3, **SMALL)
    environment, warehouse = save_embedded_environment("s3-sources", tmp_path)
    with s3_api(monkeypatch) as s3:
        s3.create_bucket(Bucket="acme-raw")
        shop = ShopInS3(s3, data_dir, environment, warehouse)
        shop.upload()
        yield shop


def test_sources_in_s3_load_and_the_next_run_reads_only_new_rows(shop_in_s3: ShopInS3) -> None:
    shop = shop_in_s3
    shop.load()
    assert table_rows(shop.warehouse) == file_rows(shop.data_dir)
    before = file_rows(shop.data_dir)
    generate_jaffle_shop(shop.data_dir, days=5, **SMALL)
    shop.upload()
    loads = shop.load()
    assert table_rows(shop.warehouse) == file_rows(shop.data_dir)
    orders = next(load for load in loads if load.table == "raw_orders")
    new_orders = file_rows(shop.data_dir)["raw_orders"] - before["raw_orders"]
    # Rows at the watermark are read again (and matched, not duplicated).
    assert orders.mode == "incremental" and orders.inserted == new_orders
    assert new_orders <= orders.rows_read < new_orders + 5


def test_unchanged_objects_in_s3_are_skipped_and_a_rewritten_one_reloads(
    shop_in_s3: ShopInS3,
) -> None:
    shop = shop_in_s3
    shop.load()
    again = shop.load()
    stores = (shop.data_dir / "raw_stores.csv").read_text().replace("Brooklyn", "Queens")
    shop.s3.put_object(Bucket="acme-raw", Key="jaffle-shop/raw_stores.csv", Body=stores.encode())
    changed = shop.load()
    with shop.warehouse:
        names = shop.warehouse.query("SELECT name FROM raw.raw_stores ORDER BY name")
    assert {load.mode for load in again} == {"unchanged"}
    assert sum(load.rows_read for load in again) == 0
    assert {load.table: load.mode for load in changed if load.mode != "unchanged"} == {
        "raw_stores": "full refresh"
    }
    assert ("Queens",) in names and ("Brooklyn",) not in names


def test_an_s3_glob_reads_every_matching_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_jaffle_shop(tmp_path / "jaffle", days=3, **SMALL)
    rows = split_orders(tmp_path / "jaffle", tmp_path / "orders", parts=3)
    (tmp_path / "orders" / "README.txt").write_text("not data")
    with s3_api(monkeypatch) as s3:
        s3.create_bucket(Bucket="acme-raw")
        upload_directory(s3, "acme-raw", "orders/2025", tmp_path / "orders")
        source = orders_source("s3://acme-raw/orders/*/part-*.parquet")
        files = resolve_files(source)
        read = sum(batch.num_rows for batch in read_batches(source))
    assert files == [f"s3://acme-raw/orders/2025/part-0{n}.parquet" for n in range(3)]
    assert read == rows


def test_a_missing_s3_object_or_bucket_names_the_location_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with s3_api(monkeypatch) as s3:
        s3.create_bucket(Bucket="acme-raw")
        with pytest.raises(SourceError, match=r"raw_orders: s3://acme-raw/nope.parquet: file not"
                           r" found .*fix the source's location"):  # fmt: skip
            list(read_batches(orders_source("s3://acme-raw/nope.parquet")))
        with pytest.raises(
            SourceError, match=r"raw_orders: s3://acme-raw/none/\*.parquet: no file"
        ):
            resolve_files(orders_source("s3://acme-raw/none/*.parquet"))


def test_sources_over_https_load_through_range_requests(tmp_path: Path, prefect_api: str) -> None:
    data_dir = tmp_path / "jaffle"
    generate_jaffle_shop(data_dir, days=3, **SMALL)
    environment, warehouse = save_embedded_environment("https-sources", tmp_path)
    with serving_directory(tmp_path) as base_url:
        extract_load(environment=environment, data_dir=f"{base_url}/jaffle")
        again = extract_load(environment=environment, data_dir=f"{base_url}/jaffle")
        with pytest.raises(
            SourceError, match=r"raw_orders: .*/jaffle/nope.parquet: file not found"
        ):
            list(read_batches(orders_source(f"{base_url}/jaffle/nope.parquet")))
    assert table_rows(warehouse) == file_rows(data_dir)
    # Full-refresh files are compared by content; HTTP gives the cursor files no modification
    # time, so they go through the incremental path (reading from their watermark) each run.
    modes = {load.table: load.mode for load in again}
    assert modes == {
        source.name: "incremental" if source.cursor else "unchanged"
        for source in JAFFLE_SHOP.declared
    }


def test_a_glob_over_https_is_refused_with_the_alternative() -> None:
    with pytest.raises(SourceError, match=r"HTTP\(S\) can't list files.*s3:// or gs://"):
        resolve_files(orders_source("https://data.example.com/orders/*.parquet"))


def test_an_s3_glob_matches_per_path_segment_like_a_local_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "orders"
    for name in ("a.parquet", "2025/b.parquet", "2025/01/c.parquet"):
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(b"PAR1")
    patterns = ("*.parquet", "*/*.parquet", "**/*.parquet", "2025/**")
    locally = {p: [Path(f).relative_to(local).as_posix()
                   for f in resolve_files(orders_source(f"{local}/{p}"))]
               for p in patterns}  # fmt: skip
    with s3_api(monkeypatch) as s3:
        s3.create_bucket(Bucket="acme-nested")
        for name in ("a.parquet", "2025/b.parquet", "2025/01/c.parquet"):
            s3.put_object(Bucket="acme-nested", Key=f"orders/{name}", Body=b"PAR1")
        remotely = {p: [f.removeprefix("s3://acme-nested/orders/")
                        for f in resolve_files(orders_source(f"s3://acme-nested/orders/{p}"))]
                    for p in patterns}  # fmt: skip
    assert remotely["*.parquet"] == ["a.parquet"]  # `*` never crosses a `/`
    assert remotely["*/*.parquet"] == ["2025/b.parquet"]
    assert remotely["**/*.parquet"] == ["2025/01/c.parquet", "2025/b.parquet", "a.parquet"]
    assert remotely == locally


@pytest.mark.parametrize(
    "name", ["raw_items; DROP TABLE raw.raw_orders; --", "raw orders", "1st_orders", 'x"y']
)
def test_a_source_name_that_is_not_a_plain_identifier_is_refused_when_declared(name: str) -> None:
    with pytest.raises(ValueError, match=r"is not a plain SQL identifier.*fix the source's decl"):
        Source(name, "x.parquet", "parquet", ORDERS, ("id",))


def test_a_column_that_is_not_a_plain_identifier_is_refused_when_declared() -> None:
    schema = ORDERS.append(pa.field("total; --", pa.int64()))
    with pytest.raises(ValueError, match=r"source 'raw_orders': column 'total; --' is not a plain"):
        Source("raw_orders", "x.parquet", "parquet", schema, ("id",))
