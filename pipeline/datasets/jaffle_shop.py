"""The jaffle shop: six raw tables as the demo generator (`demo/data.py`) writes them.

Small tables are CSV; the large, incremental ones Parquet sorted by their cursor.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.datasets.base import Dataset
from pipeline.sources import Source

TIMESTAMP = pa.timestamp("us")

JAFFLE_SHOP = Dataset(
    "jaffle_shop",
    (
        Source(
            "raw_stores",
            "raw_stores.csv",
            "csv",
            pa.schema(
                [
                    ("id", pa.int64()),
                    ("name", pa.string()),
                    ("opened_at", TIMESTAMP),
                    ("tax_rate", pa.float64()),
                ]
            ),
            primary_key=("id",),
        ),
        Source(
            "raw_customers",
            "raw_customers.parquet",
            "parquet",
            pa.schema([("id", pa.int64()), ("name", pa.string()), ("updated_at", TIMESTAMP)]),
            primary_key=("id",),
            cursor="updated_at",
            # A change time, not an event: a backfill of order days still brings it up to date.
            backfill_by_window=False,
        ),
        Source(
            "raw_products",
            "raw_products.csv",
            "csv",
            pa.schema(
                [
                    ("sku", pa.string()),
                    ("name", pa.string()),
                    ("type", pa.string()),
                    ("price", pa.int64()),
                    ("description", pa.string()),
                ]
            ),
            primary_key=("sku",),
        ),
        Source(
            "raw_supplies",
            "raw_supplies.csv",
            "csv",
            pa.schema(
                [
                    ("id", pa.string()),
                    ("name", pa.string()),
                    ("cost", pa.int64()),
                    ("perishable", pa.bool_()),
                    ("sku", pa.string()),
                ]
            ),
            primary_key=("id", "sku"),
        ),
        Source(
            "raw_orders",
            "raw_orders.parquet",
            "parquet",
            pa.schema(
                [
                    ("id", pa.int64()),
                    ("customer", pa.int64()),
                    ("ordered_at", TIMESTAMP),
                    ("store_id", pa.int64()),
                    ("subtotal", pa.int64()),
                    ("tax_paid", pa.int64()),
                    ("order_total", pa.int64()),
                ]
            ),
            primary_key=("id",),
            cursor="ordered_at",
        ),
        Source(
            "raw_items",
            "raw_items.parquet",
            "parquet",
            pa.schema(
                [
                    ("id", pa.int64()),
                    ("order_id", pa.int64()),
                    ("sku", pa.string()),
                    ("ordered_at", TIMESTAMP),
                ]
            ),
            primary_key=("id",),
            cursor="ordered_at",
        ),
    ),
)
