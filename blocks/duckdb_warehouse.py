"""DuckDB warehouse: the embedded local counterpart of the Snowflake warehouse."""

from __future__ import annotations

import atexit
import gc
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pandas as pd
import pyarrow as pa
from pydantic import Field, PrivateAttr, field_validator

from blocks._validation import IDENTIFIER_PATTERN, check_identifier
from blocks.warehouse import Dialect, TableData, Warehouse

_OPEN_LOCK = threading.Lock()
MEMORY_LIMIT_PATTERN = r"^(|\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB))$"


class DuckDBWarehouse(Warehouse):
    """A DuckDB database file used as the warehouse; no account, no server."""

    _block_type_name = "DuckDB Warehouse"
    _logo_url = "https://duckdb.org/images/logo-dl/DuckDB_Logo-stacked.png"  # type: ignore[assignment]
    _documentation_url = "https://duckdb.org/docs/"  # type: ignore[assignment]
    _description = (
        "An embedded DuckDB database file used as the warehouse for local runs and tests. "
        "Same interface as the Snowflake warehouse, so flows run unchanged on either."
    )

    dialect: ClassVar[Dialect] = "duckdb"
    dbt_target: ClassVar[str] = "duckdb"

    path: str = Field(
        default="data/warehouse.duckdb",
        title="Database file",
        description="Path of the DuckDB database file, relative to the working directory, "
        "created with its folder on first use. Empty: data/warehouse.duckdb.",
        min_length=1,
    )
    raw_schema: str = Field(
        default="raw",
        title="Raw schema",
        description="Schema the extract-load flow writes raw tables into. Empty: raw.",
        json_schema_extra={"pattern": IDENTIFIER_PATTERN},
    )
    transform_schema: str = Field(
        default="analytics",
        title="Transform schema",
        description="Schema dbt builds models into. Empty: analytics.",
        json_schema_extra={"pattern": IDENTIFIER_PATTERN},
    )
    memory_limit: str = Field(
        default="",
        title="Memory limit",
        description="DuckDB memory limit such as 2GB or 512MiB. Empty: DuckDB's default (80% "
        "of RAM).",
        json_schema_extra={"pattern": MEMORY_LIMIT_PATTERN},
    )

    _connection: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)

    @field_validator("raw_schema", "transform_schema", mode="before")
    @classmethod
    def _schema_is_identifier(cls, value: str, info: Any) -> str:
        return check_identifier(value, info.field_name)

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit_has_unit(cls, value: str) -> str:
        if not re.fullmatch(MEMORY_LIMIT_PATTERN, value):
            raise ValueError(
                f"memory_limit {value!r} needs a number and a unit, such as `2GB` or `512MiB`, "
                "or empty for DuckDB's default"
            )
        return value

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    @property
    def schema_name(self) -> str:
        return self.raw_schema

    def _open(self) -> None:
        if self._connection is not None:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = (
            {"memory_limit": self.memory_limit} if self.memory_limit else {}
        )
        # DuckDB shares one database instance per file in a process; opening it from several
        # threads at once races ("Unique file handle conflict"), and so does creating the
        # schema ("Catalog write-write conflict"), so opens take turns.
        with _OPEN_LOCK:
            self._connection = duckdb.connect(self.path, config=config)
            self._create_raw_schema()
        # Raw tables have no row order. Preserving the stream's order makes a bulk insert write
        # row groups that the next checkpoint reads back and rewrites (seconds and hundreds of
        # MB on millions of rows); this session's inserts skip that, other sessions keep theirs.
        self._connection.execute("SET SESSION preserve_insertion_order = false")

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _conn(self) -> duckdb.DuckDBPyConnection:
        self._require_open()
        assert self._connection is not None
        return self._connection

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self._conn().execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._conn().execute(sql, params).fetchall()

    def bulk_load(self, table: str, data: TableData, *, temporary: bool = False) -> int:
        conn = self._conn()
        arrow = _as_arrow(data)
        target = self.qualified(check_identifier(table, "table"), temporary=temporary)
        # A stream can be read only once, so the table is created from its schema alone.
        conn.register("_bulk_load_columns", arrow.schema.empty_table())
        conn.register("_bulk_load_input", arrow)
        try:
            conn.execute(
                f"CREATE {'TEMP ' if temporary else ''}TABLE IF NOT EXISTS {target} "
                "AS SELECT * FROM _bulk_load_columns"
            )
            inserted = conn.execute(
                f"INSERT INTO {target} BY NAME SELECT * FROM _bulk_load_input"
            ).fetchone()
        finally:
            conn.unregister("_bulk_load_input")
            conn.unregister("_bulk_load_columns")
        return int(inserted[0]) if inserted else 0

    def qualified(self, table: str, *, temporary: bool = False) -> str:
        # DuckDB keeps temporary tables in its own `temp` catalog, never in a schema of the file.
        return f"temp.main.{self.quote(table)}" if temporary else super().qualified(table)

    # pragma_table_info reads one table's entry; duckdb_columns() and information_schema load
    # every table's storage metadata first (about 15 ms in a fresh process with large tables).
    def table_columns(self, tables: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for table in tables:
            try:
                rows = self.query("SELECT name FROM pragma_table_info(?)", [self.qualified(table)])
            except duckdb.CatalogException:
                continue  # no such table
            found[table.lower()] = [str(row[0]).lower() for row in rows]
        return found

    def replace_table(self, table: str, staging: str) -> None:
        # DuckDB's DDL is transactional: drop + rename commit together, and copy nothing.
        with self.transaction():
            self.execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")
            self.execute(f"ALTER TABLE {self.qualified(staging)} RENAME TO {self.quote(table)}")

    def close_dbt_connections(self) -> None:
        # dbt-duckdb keeps its database open after a run: this process could not open the file
        # again with other settings, and the open objects leak noisily at interpreter exit.
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
        from dbt.adapters.factory import reset_adapters

        reset_adapters()  # drops the adapters' cursors on the database
        atexit.unregister(_release_dbt_duckdb)  # once per process, however many runs
        atexit.register(_release_dbt_duckdb)
        try:
            DuckDBConnectionManager.env().close()
        except Exception:  # dbt never connected in this process
            return
        DuckDBConnectionManager.close_all_connections()

    def dbt_env(self) -> dict[str, str]:
        return {
            "ELT_DUCKDB_PATH": str(Path(self.path).resolve()),
            "ELT_RAW_SCHEMA": self.raw_schema,
            "ELT_TRANSFORM_SCHEMA": self.transform_schema,
        }


def _release_dbt_duckdb() -> None:
    """At exit, clear dbt-duckdb's modules (as interpreter teardown would) and collect."""
    # Their objects hold DuckDB's types in reference cycles that teardown collects only after
    # DuckDB's extension has gone, which then prints ~40 lines of `nanobind: leaked ...`.
    for name in [name for name in sys.modules if name.startswith("dbt.adapters.duckdb")]:
        vars(sys.modules[name]).clear()
    gc.collect()


def _as_arrow(data: TableData) -> pa.Table | pa.RecordBatchReader:
    """`data` as something DuckDB scans straight from Arrow memory, streams left streaming."""
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    return data
