"""A load killed (SIGKILL, no cleanup can run) at any step leaves nothing behind once the
table's next load has run: no staging table, every row loaded. On DuckDB and fakesnow."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blocks import Warehouse
from pipeline.loading import load_source
from tests.conftest import REPO_ROOT
from tests.support.killable_load import ORDERS, orders_source
from tests.support.warehouses import warehouse_on_disk

# Each case starts a fresh Python that imports the loader, then kills it: about 5 s apiece.
pytestmark = pytest.mark.slow

# (warehouse, load, step): whether the killed load left a real staging table, for the next
# load to drop. Temporary ones die with the session: DuckDB stages rows to MERGE in one, Snowflake
# stages every load in one (its replace copies the rows).
DEBRIS = {
    ("duckdb", "first", "staging"): True,
    ("duckdb", "first", "replace"): True,  # killed between the DROP and the RENAME
    ("duckdb", "first", "cleanup"): False,  # the staging table became the target
    ("duckdb", "incremental", "staging"): False,
    ("snowflake", "first", "staging"): False,
    ("snowflake", "first", "replace"): False,
    ("snowflake", "first", "cleanup"): False,
    ("snowflake", "incremental", "staging"): False,
}
# A temporary staging table's name (a real one's is `<table>__staging`).
TEMPORARY_STAGING = re.compile(r"raw_orders__staging_[0-9a-f]{8}")


def write_orders(path: Path, first_id: int, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = list(range(first_id, first_id + count))
    times = [datetime(2025, 1, 1) + timedelta(minutes=i) for i in ids]
    pq.write_table(pa.table([ids, times], schema=ORDERS), path, row_group_size=100)


def staging_tables(warehouse: Warehouse) -> list[str]:
    with warehouse.fresh() as own:
        found = own.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE LOWER(table_name) LIKE 'raw_orders%staging%'"
        )
    return sorted(str(name).lower() for (name,) in found)


def end_killed_session(warehouse: Warehouse) -> None:
    """Drop the killed session's temporary tables, as Snowflake does when a session ends
    (fakesnow keeps them as ordinary tables)."""
    with warehouse.fresh() as own:
        for name in staging_tables(warehouse):
            if TEMPORARY_STAGING.fullmatch(name):
                own.execute(f"DROP TABLE {own.qualified(name)}")


def kill_at(kind: str, folder: Path, location: str, step: str, private_key_pem: str) -> None:
    """Run a load in a child process until it reaches `step`, then SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.killable_load", kind, str(folder), location, step],
        cwd=REPO_ROOT, env={**os.environ, "ELT_TEST_PRIVATE_KEY": private_key_pem},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    reached = child.stdout.readline()
    if reached.strip() != f"paused at {step}":
        child.kill()
        pytest.fail(f"the load never reached {step}: {reached}{child.communicate()[1][-3000:]}")
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


@pytest.mark.parametrize("kind", ["duckdb", "snowflake"])
@pytest.mark.parametrize("load, step", sorted({(load, step) for _, load, step in DEBRIS}))
def test_a_load_killed_at_any_step_leaves_no_staging_table_after_the_next_load(
    tmp_path: Path, private_key_pem: str, kind: str, load: str, step: str
) -> None:
    data, folder = tmp_path / "orders", tmp_path / "warehouse"
    folder.mkdir()
    source = orders_source(f"{data}/*.parquet")
    write_orders(data / "a.parquet", 0, 300)
    if load == "incremental":
        # Each process in turn: fakesnow holds its database file until its patch ends.
        with warehouse_on_disk(kind, folder, private_key_pem) as warehouse, warehouse:
            load_source(warehouse, source)
        write_orders(data / "b.parquet", 300, 300)
    kill_at(kind, folder, source.location, step, private_key_pem)
    with warehouse_on_disk(kind, folder, private_key_pem) as warehouse:
        if kind == "snowflake":
            end_killed_session(warehouse)
        assert bool(staging_tables(warehouse)) == DEBRIS[kind, load, step]
        with warehouse:
            load_source(warehouse, source)
            loaded = warehouse.query(f"SELECT COUNT(*) FROM {warehouse.qualified('raw_orders')}")
        assert staging_tables(warehouse) == []
    assert loaded == [(300 if load == "first" else 600,)]
