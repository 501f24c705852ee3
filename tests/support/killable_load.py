"""Load one source, stopping at a named step until the test kills the process with SIGKILL.

Usage: python -m tests.support.killable_load KIND FOLDER SOURCE_GLOB STEP (the PEM key of the
Snowflake stand-in in ELT_TEST_PRIVATE_KEY). Prints `paused at STEP` once there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

import pipeline.loading
from pipeline.loading import load_source
from pipeline.sources import Source
from tests.support.warehouses import warehouse_on_disk

ORDERS = pa.schema([("id", pa.int64()), ("ordered_at", pa.timestamp("us"))])

# Each step but staging (inside the stream): the statement, naming the staging table, that
# the load pauses before.
STATEMENTS = {
    "replace": ("ALTER TABLE", "INSERT OVERWRITE"),  # the second statement of a replace
    "cleanup": ("DROP TABLE IF EXISTS",),
}


def orders_source(location: str) -> Source:
    return Source("raw_orders", location, "parquet", ORDERS, ("id",), "ordered_at")


def pause(step: str) -> None:
    print(f"paused at {step}", flush=True)
    sys.stdin.readline()  # the test kills the process here
    raise SystemExit(f"not killed at {step}")


def pausing_stream(read: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for number, item in enumerate(read(*args, **kwargs)):
            if number == 1:  # a batch is in the staging table, more are coming
                pause("staging")
            yield item

    return stream


def pausing_execute(execute: Callable[..., Any], step: str) -> Callable[..., Any]:
    def paused(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        if sql.startswith(STATEMENTS[step]) and "__staging" in sql.lower():
            pause(step)
        return execute(self, sql, *args, **kwargs)

    return paused


def main(kind: str, folder: str, location: str, step: str) -> None:
    key = os.environ.get("ELT_TEST_PRIVATE_KEY", "")
    with warehouse_on_disk(kind, Path(folder), key) as warehouse:
        if step == "staging":
            pipeline.loading.read_file_batches = pausing_stream(pipeline.loading.read_file_batches)  # type: ignore[assignment]
        else:
            kind_of = type(warehouse)
            kind_of.execute = pausing_execute(kind_of.execute, step)  # type: ignore[method-assign]
        with warehouse:
            load_source(warehouse, orders_source(location), batch_rows=100)
    raise SystemExit(f"the load finished without reaching {step}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
