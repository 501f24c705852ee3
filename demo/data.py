"""The jaffle-shop demo dataset, generated deterministically day by day at any scale.

Each day draws from its own seed and ids continue across days, so generating N + k days
reproduces the first N days exactly and only appends: incremental loads can be tested for real.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.datasets.jaffle_shop import JAFFLE_SHOP
from pipeline.sources import Format, Source

ROW_GROUP_ROWS = 128_000
OPEN_SECONDS = (7 * 3600, 22 * 3600)

PRODUCTS = [
    ("JAF-001", "nutellaphone who dis?", "jaffle", 1100, "nutella and banana jaffle"),
    ("JAF-002", "doctor stew", "jaffle", 1100, "house-made beef stew jaffle"),
    ("JAF-003", "the krautback", "jaffle", 1200, "lamb and pork bratwurst with sauerkraut"),
    ("JAF-004", "flame impala", "jaffle", 1400, "pulled pork and pineapple with chili"),
    ("JAF-005", "mel-bun", "jaffle", 1200, "melon and minced beef bao, in a jaffle"),
    ("BEV-001", "tangaroo", "beverage", 600, "mango and tangerine smoothie"),
    ("BEV-002", "chai and mighty", "beverage", 500, "oatmilk chai latte"),
    ("BEV-003", "vanilla ice", "beverage", 600, "iced coffee with vanilla syrup"),
    ("BEV-004", "for richer or pourover", "beverage", 700, "daily selection of pourover coffee"),
    ("BEV-005", "adele-ade", "beverage", 400, "a kiwi and lime agua fresca"),
]
SUPPLIES = [
    ("SUP-001", "compostable cutlery - knife", 7, False),
    ("SUP-002", "cutlery - fork", 7, False),
    ("SUP-003", "serving boat", 11, False),
    ("SUP-004", "napkin", 4, False),
    ("SUP-005", "16oz compostable clear cup", 13, False),
    ("SUP-006", "bread", 33, True),
    ("SUP-007", "cheese", 20, True),
    ("SUP-008", "mango", 32, True),
    ("SUP-009", "chai mix", 98, True),
    ("SUP-010", "coffee beans", 33, True),
]
STORES = [
    (1, "Philadelphia", date(2016, 9, 1), 0.06),
    (2, "Brooklyn", date(2017, 3, 12), 0.04),
    (3, "Chicago", date(2018, 4, 29), 0.0625),
    (4, "San Francisco", date(2018, 5, 9), 0.075),
    (5, "New Orleans", date(2019, 3, 10), 0.04),
    (6, "Los Angeles", date(2019, 9, 13), 0.08),
]
FIRST_NAMES = [
    "Ava", "Ben", "Cleo", "Dev", "Emil", "Fay", "Gus", "Hana", "Ivo",
    "Jade", "Kai", "Lena", "Milo", "Nia", "Omar", "Pia", "Quin", "Rosa",
]  # fmt: skip
LAST_NAMES = [
    "Adams", "Baker", "Chen", "Diaz", "Evans", "Fox", "Garcia",
    "Hill", "Ito", "Jones", "Khan", "Lopez", "Moore", "Nguyen",
]  # fmt: skip
PRICE = np.array([price for _, _, _, price, _ in PRODUCTS], dtype=np.int64)
SKUS = np.array([sku for sku, *_ in PRODUCTS])
TAX = np.array([rate for *_, rate in STORES])


@dataclass(frozen=True)
class Day:
    """One day of orders, their items and the customers who first ordered that day."""

    orders: pa.Table
    items: pa.Table
    new_customers: pa.Table
    customers: int  # customers known at the end of the day


def orders_per_day(day_index: int, weekday: int, base: float) -> float:
    """Expected orders: growing over the years, busier at weekends."""
    weekend = 1.35 if weekday >= 5 else 1.0
    return base * (1 + day_index / 365) * weekend


def generate_day(
    day_index: int, start: date, seed: int, first_order: int, first_item: int,
    customers: int, base: float,
) -> Day:  # fmt: skip
    """Orders and items of one day, drawn from that day's own seed."""
    rng = np.random.default_rng([seed, day_index])
    today = start + timedelta(days=day_index)
    n = int(rng.poisson(orders_per_day(day_index, today.weekday(), base)))
    new_share = 1.0 if customers == 0 else max(0.08, 0.45 - day_index / 900)
    is_new = rng.random(n) < new_share
    new_ids = customers + np.cumsum(is_new)
    returning = rng.integers(1, max(customers, 1) + 1, size=n)
    customer = np.where(is_new, new_ids, returning).astype(np.int64)
    open_stores = np.array([i for i, (_, _, opened, _) in enumerate(STORES) if opened <= today])
    store_index = rng.choice(open_stores, size=n)
    seconds = np.sort(rng.integers(*OPEN_SECONDS, size=n))
    midnight = np.datetime64(datetime.combine(today, datetime.min.time()), "us")
    ordered_at = midnight + seconds.astype("timedelta64[s]").astype("timedelta64[us]")
    items_per_order = rng.integers(1, 5, size=n)
    product = rng.integers(0, len(PRODUCTS), size=int(items_per_order.sum()))
    order_of_item = np.repeat(np.arange(n), items_per_order)
    subtotal = np.bincount(order_of_item, weights=PRICE[product], minlength=n).astype(np.int64)
    tax_paid = np.round(subtotal * TAX[store_index]).astype(np.int64)
    order_ids = first_order + np.arange(n, dtype=np.int64)
    orders = pa.table(
        {
            "id": order_ids,
            "customer": customer,
            "ordered_at": pa.array(ordered_at, pa.timestamp("us")),
            "store_id": (store_index + 1).astype(np.int64),
            "subtotal": subtotal,
            "tax_paid": tax_paid,
            "order_total": subtotal + tax_paid,
        },
        schema=JAFFLE_SHOP.schema("raw_orders"),
    )
    items = pa.table(
        {
            "id": first_item + np.arange(len(product), dtype=np.int64),
            "order_id": order_ids[order_of_item],
            "sku": SKUS[product],
            "ordered_at": pa.array(ordered_at[order_of_item], pa.timestamp("us")),
        },
        schema=JAFFLE_SHOP.schema("raw_items"),
    )
    new_customers = customer_rows(customer[is_new], ordered_at[is_new])
    return Day(orders, items, new_customers, int(customers + is_new.sum()))


def customer_rows(ids: np.ndarray, first_ordered_at: np.ndarray) -> pa.Table:
    """Customers as they appear with their first order; demo customers never change after, so
    `updated_at` (the cursor) stays that first order's time."""
    first = np.array(FIRST_NAMES)[ids % len(FIRST_NAMES)]
    last = np.array(LAST_NAMES)[(ids * 7) % len(LAST_NAMES)]
    return pa.table(
        {
            "id": ids,
            "name": np.char.add(np.char.add(first, " "), last),
            "updated_at": pa.array(first_ordered_at, pa.timestamp("us")),
        },
        schema=JAFFLE_SHOP.schema("raw_customers"),
    )


def generate_days(days: int, start: date, seed: int, base: float) -> Iterator[Day]:
    """Every day in order, ids continuing from the day before."""
    next_order, next_item, customers = 1, 1, 0
    for index in range(days):
        day = generate_day(index, start, seed, next_order, next_item, customers, base)
        next_order += day.orders.num_rows
        next_item += day.items.num_rows
        customers = day.customers
        yield day


def dimension_tables() -> dict[str, pa.Table]:
    """Stores, products and supplies (supplies: a supply per sku it is used for)."""
    supplies: list[tuple[object, ...]] = [
        (sup, name, cost, perishable, sku)
        for p, (sku, *_rest) in enumerate(PRODUCTS)
        for s, (sup, name, cost, perishable) in enumerate(SUPPLIES)
        if (s + p) % 3 == 0 or s < 2
    ]
    stores = [(i, n, datetime.combine(o, datetime.min.time()), t) for i, n, o, t in STORES]
    rows: dict[str, list[tuple[object, ...]]] = {
        "raw_stores": list(stores),
        "raw_products": list(PRODUCTS),
        "raw_supplies": supplies,
    }
    return {table: _from_rows(table, table_rows) for table, table_rows in rows.items()}


def _from_rows(table: str, rows: list[tuple[object, ...]]) -> pa.Table:
    schema = JAFFLE_SHOP.schema(table)
    return pa.Table.from_pylist([dict(zip(schema.names, row, strict=True)) for row in rows], schema)


class TableWriter:
    """Appends Arrow tables to one file in CSV, Parquet (fixed row groups) or JSON lines."""

    def __init__(self, path: Path, fmt: Format, schema: pa.Schema) -> None:
        self.path, self.fmt, self.schema = path, fmt, schema
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self._parquet = pq.ParquetWriter(path, schema) if fmt == "parquet" else None
        self._csv = pacsv.CSVWriter(path, schema) if fmt == "csv" else None
        self._jsonl = path.open("w") if fmt == "jsonl" else None

    def write(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if self._parquet is None:
            self._write_now(table)
            return
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        assert self._parquet is not None
        combined = pa.concat_tables(self.pending)
        cut = combined.num_rows if final else combined.num_rows - combined.num_rows % ROW_GROUP_ROWS
        if cut:
            self._parquet.write_table(combined.slice(0, cut), row_group_size=ROW_GROUP_ROWS)
        rest = combined.slice(cut)
        self.pending, self.pending_rows = ([rest], rest.num_rows) if rest.num_rows else ([], 0)

    def _write_now(self, table: pa.Table) -> None:
        if self._csv is not None:
            self._csv.write_table(table)
        elif self._jsonl is not None:
            for row in table.to_pylist():
                self._jsonl.write(json.dumps(row, default=_json_default) + "\n")

    def close(self) -> None:
        if self._parquet is not None:
            if self.pending_rows:
                self._flush(final=True)
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
        if self._jsonl is not None:
            self._jsonl.close()


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def writer_for(source: Source) -> TableWriter:
    """A writer of `source`'s one local file, in its format and schema."""
    return TableWriter(Path(source.location), source.format, source.schema)


def generate_jaffle_shop(
    out_dir: Path,
    days: int = 30,
    start: date = date(2025, 1, 1),
    seed: int = 42,
    orders_per_day_at_start: float = 600,
    formats: Mapping[str, Format] | None = None,
) -> dict[str, Path]:
    """Write the six raw tables under `out_dir`; return table name → file path."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    # Written where the dataset's declaration reads them, in the declared (or chosen) format.
    sources = {source.name: source for source in JAFFLE_SHOP.sources(out_dir, formats)}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {table: Path(source.location) for table, source in sources.items()}
    for stale in out_dir.glob("raw_*.*"):
        if stale not in paths.values():
            stale.unlink()
    daily = ("raw_orders", "raw_items", "raw_customers")
    writers = {t: writer_for(sources[t]) for t in daily}
    try:
        for day in generate_days(days, start, seed, orders_per_day_at_start):
            writers["raw_orders"].write(day.orders)
            writers["raw_items"].write(day.items)
            writers["raw_customers"].write(day.new_customers)
    finally:
        for writer in writers.values():
            writer.close()
    for table, data in dimension_tables().items():
        writer = writer_for(sources[table])
        writer.write(data)
        writer.close()
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the jaffle-shop demo dataset.")
    parser.add_argument("--out", type=Path, default=Path("data/jaffle"))
    parser.add_argument("--days", type=int, default=30, help="days of orders (1095 = 3 years)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    for table, path in generate_jaffle_shop(args.out, args.days, seed=args.seed).items():
        rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None
        print(f"{table:<14} {path}" + (f"  ({rows:,} rows)" if rows is not None else ""))


if __name__ == "__main__":
    main()
