"""The warehouse interface every warehouse block implements, so flows never branch on which one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, ClassVar, Literal, Self, TypeAlias

import pandas as pd
import pyarrow as pa
from prefect.blocks.core import Block

from blocks._form import BLOCK_CONFIG

Dialect = Literal["duckdb", "snowflake"]
# A RecordBatchReader streams: a warehouse consumes it once, batch by batch.
TableData: TypeAlias = pa.Table | pa.RecordBatch | pa.RecordBatchReader | pd.DataFrame


class WarehouseNotOpenError(RuntimeError):
    """Raised when SQL is sent to a warehouse block outside its `with` block."""


class Warehouse(Block, ABC):
    """A warehouse connection owner: `with warehouse:` opens one connection for everything inside.

    Tasks inside the `with` reuse that connection. A task that runs in another thread or
    process (a mapped task) opens its own with `with warehouse.fresh() as own:`.
    """

    model_config = BLOCK_CONFIG

    dialect: ClassVar[Dialect]
    dbt_target: ClassVar[str]
    # Whether replace_table copies the staged rows (so they may stage in a temporary table)
    # rather than renaming the staging table into the target.
    replace_copies_rows: ClassVar[bool] = False

    def __enter__(self) -> Self:
        self._open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def fresh(self) -> Self:
        """An unopened copy with the same settings, for a task that must hold its own connection."""
        return type(self).model_validate(self.model_dump())

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """Whether a connection is open."""

    @property
    @abstractmethod
    def schema_name(self) -> str:
        """The schema raw tables load into."""

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement (qmark `?` parameters)."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one query and return all rows."""

    @abstractmethod
    def bulk_load(self, table: str, data: TableData, *, temporary: bool = False) -> int:
        """Append `data` to raw-schema `table` through the bulk path, creating it if missing;
        return the rows appended. `temporary` creates it private to this connection and gone
        with it (staging that nothing else reads)."""

    @abstractmethod
    def replace_table(self, table: str, staging: str) -> None:
        """Atomically make raw-schema `table` hold exactly the rows of `staging`."""

    @abstractmethod
    def dbt_env(self) -> dict[str, str]:
        """Environment variables the dbt profile reads for this warehouse (credentials included)."""

    def close_dbt_connections(self) -> None:
        """Close what dbt's adapter for this warehouse keeps open after a run (if anything)."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit everything inside on success, roll all of it back on any error."""
        self.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def table_columns(self, tables: Sequence[str]) -> dict[str, list[str]]:
        """Lower-case column names, in table order, of those raw-schema `tables` that exist."""
        names = [table.lower() for table in tables]
        rows = self.query(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE UPPER(table_schema) = UPPER(?) "
            f"AND LOWER(table_name) IN ({', '.join('?' for _ in names)}) "
            "ORDER BY table_name, ordinal_position",
            [self.schema_name, *names],
        )
        found: dict[str, list[str]] = {}
        for table, column in rows:
            found.setdefault(str(table).lower(), []).append(str(column).lower())
        return found

    def table_exists(self, table: str) -> bool:
        """Whether raw-schema `table` exists."""
        return table.lower() in self.table_columns([table])

    def columns(self, table: str) -> list[str]:
        """Lower-case column names of raw-schema `table`, in table order."""
        return self.table_columns([table]).get(table.lower(), [])

    def quote(self, identifier: str) -> str:
        """`identifier` quoted for this warehouse's SQL, naming what the unquoted name would."""
        return '"' + identifier.replace('"', '""') + '"'

    def qualified(self, table: str, *, temporary: bool = False) -> str:
        """`schema.table`, quoted, for a table in the raw schema (or a temporary one
        `bulk_load` made)."""
        return f"{self.quote(self.schema_name)}.{self.quote(table)}"

    def _schema_exists(self) -> bool:
        return bool(
            self.query(
                "SELECT COUNT(*) FROM information_schema.schemata "
                "WHERE UPPER(schema_name) = UPPER(?)",
                [self.schema_name],
            )[0][0]
        )

    def ensure_table(self, table: str, columns: str) -> None:
        """Create raw-schema `table` with `columns` (SQL) unless it exists."""
        if self.table_exists(table):
            return
        try:
            self.execute(f"CREATE TABLE IF NOT EXISTS {self.qualified(table)} ({columns})")
        except Exception:
            # Mapped tasks race to create it; losing is fine.
            if not self.table_exists(table):
                raise

    def _create_raw_schema(self) -> None:
        if self._schema_exists():
            return
        try:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(self.schema_name)}")
        except Exception:
            # Mapped tasks opening connections at once race to create it; losing is fine.
            if not self._schema_exists():
                raise

    def _require_open(self) -> None:
        if not self.is_open:
            raise WarehouseNotOpenError(
                f"{type(self).__name__} is not open: use it inside `with warehouse:` "
                "(or `with warehouse.fresh() as own:` in a mapped task)"
            )
