"""The local Prefect server queues SQLite writes instead of failing them (sqlite_server.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.server.database.configurations import AioSqliteConfiguration
from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, temporary_settings

from deployments.sqlite_server import QueuedWritesSqliteConfiguration, queue_sqlite_writes


async def read_then_write_while_another_writer_commits(
    config: AioSqliteConfiguration,
) -> list[str]:
    """A request's transaction reads, another connection commits a write, then the request
    writes: what the server's task-run recorder and a `POST /task_runs/` do to each other."""
    engine = await config.engine()
    async with engine.begin() as connection:
        await connection.execute(sa.text("CREATE TABLE IF NOT EXISTS runs (name TEXT)"))
    request, recorder = await config.session(engine), await config.session(engine)
    try:
        async with config.begin_transaction(request):
            await request.execute(sa.text("SELECT COUNT(*) FROM runs"))

            async def record() -> None:
                async with config.begin_transaction(recorder):
                    await recorder.execute(sa.text("INSERT INTO runs VALUES ('recorded')"))

            recording = asyncio.create_task(record())
            # The recorder commits now under Prefect's DEFERRED begin, or waits for the
            # request's write lock under IMMEDIATE.
            await asyncio.wait({recording}, timeout=1)
            await request.execute(sa.text("INSERT INTO runs VALUES ('requested')"))
        await recording
        rows = await request.execute(sa.text("SELECT name FROM runs ORDER BY rowid"))
        return [row[0] for row in rows]
    finally:
        await request.close()
        await recorder.close()
        await engine.dispose()


def test_stock_prefect_sqlite_fails_a_read_then_write_that_another_writer_overtook(
    tmp_path: Path,
) -> None:
    """Why the local server needs its own configuration: SQLite refuses at once (the busy
    timeout does not apply), which Prefect answers with 503."""
    config = AioSqliteConfiguration(f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}")
    with pytest.raises(sa.exc.OperationalError, match="database is locked"):
        asyncio.run(read_then_write_while_another_writer_commits(config))


def test_the_local_server_queues_the_other_writer_behind_a_request_that_read_first(
    tmp_path: Path,
) -> None:
    config = QueuedWritesSqliteConfiguration(f"sqlite+aiosqlite:///{tmp_path / 'queued.db'}")
    assert asyncio.run(read_then_write_while_another_writer_commits(config)) == [
        "requested",
        "recorded",
    ]


def test_a_server_on_postgres_keeps_prefects_own_configuration() -> None:
    from prefect.server.database.dependencies import MODELS_DEPENDENCIES

    before = MODELS_DEPENDENCIES["database_config"]
    url = "postgresql+asyncpg://prefect:prefect@db:5432/prefect"
    with temporary_settings({PREFECT_API_DATABASE_CONNECTION_URL: url}):
        assert queue_sqlite_writes() is False
    assert MODELS_DEPENDENCIES["database_config"] is before
