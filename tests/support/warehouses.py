"""Warehouse blocks under test: real DuckDB, and the Snowflake block on fakesnow."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import fakesnow
import fakesnow.cursor
import pytest
import snowflake.connector

from blocks import DuckDBWarehouse, SnowflakeWarehouse, Warehouse


@dataclass
class ConnectionLog:
    """Every connection a warehouse block opened, so tests can count and inspect them."""

    opened: list[Any] = field(default_factory=list)
    settings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def all_closed(self) -> bool:
        return all(_is_closed(connection) for connection in self.opened)


def _is_closed(connection: Any) -> bool:
    if isinstance(connection, duckdb.DuckDBPyConnection):
        try:
            connection.execute("SELECT 1")
        except duckdb.ConnectionException:
            return True
        return False
    return bool(connection.is_closed())


def _counting(
    connect: Callable[..., Any], log: ConnectionLog, lock: threading.Lock | None = None
) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock or contextlib.nullcontext():
            connection = connect(*args, **kwargs)
        log.opened.append(connection)
        log.settings.append(kwargs)
        return connection

    return counted


@contextmanager
def duckdb_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Warehouse, ConnectionLog]]:
    log = ConnectionLog()
    monkeypatch.setattr(duckdb, "connect", _counting(duckdb.connect, log))
    yield DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb")), log


def _merges_take_turns(execute: Callable[..., Any], lock: threading.Lock) -> Callable[..., Any]:
    def serialized(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        if not command.lstrip().upper().startswith("MERGE"):
            return execute(self, command, *args, **kwargs)
        with lock:
            return execute(self, command, *args, **kwargs)

    return serialized


@contextmanager
def fakesnow_warehouse(private_key_pem: str) -> Iterator[tuple[Warehouse, ConnectionLog]]:
    log = ConnectionLog()
    with fakesnow.patch():
        # Not monkeypatch: its undo would run after fakesnow's and leave the fake installed.
        # fakesnow creates the database on connect and races with itself when mapped tasks
        # connect at once (real Snowflake doesn't), so the stand-in's connects take turns.
        counted = _counting(snowflake.connector.connect, log, threading.Lock())
        # fakesnow runs a MERGE through a temporary table it registers in a catalog shared by
        # all connections, so MERGEs from mapped tasks collide (Snowflake's temporary tables
        # are per session); the stand-in's MERGEs take turns.
        cursor = fakesnow.cursor.FakeSnowflakeCursor
        merges = _merges_take_turns(cursor.execute, threading.Lock())
        with (
            mock.patch.object(snowflake.connector, "connect", counted),
            mock.patch.object(cursor, "execute", merges),
        ):
            yield (
                SnowflakeWarehouse(
                    account="myorg-myaccount",
                    user="LOADER",
                    private_key=private_key_pem,
                    warehouse="LOADING",
                    database="ELT_TEST",
                ),
                log,
            )


@pytest.fixture(params=["duckdb", "snowflake"])
def warehouse(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    private_key_pem: str,
) -> Iterator[tuple[Warehouse, ConnectionLog]]:
    """The same warehouse contract, once on DuckDB and once on Snowflake (fakesnow)."""
    if request.param == "duckdb":
        with duckdb_warehouse(tmp_path, monkeypatch) as pair:
            yield pair
    else:
        with fakesnow_warehouse(private_key_pem) as pair:
            yield pair


@contextmanager
def warehouse_on_disk(kind: str, folder: Path, private_key_pem: str) -> Iterator[Warehouse]:
    """A warehouse whose data lives in `folder`, so several processes can use it in turn:
    a DuckDB file, or fakesnow keeping its databases there."""
    if kind == "duckdb":
        yield DuckDBWarehouse(path=str(folder / "warehouse.duckdb"))
        return
    with fakesnow.patch(db_path=folder):
        yield SnowflakeWarehouse(
            account="myorg-myaccount",
            user="LOADER",
            private_key=private_key_pem,
            warehouse="LOADING",
            database="ELT_TEST",
        )
