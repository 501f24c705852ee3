"""`prefect server start` for the project's local SQLite server, with write transactions that
wait their turn instead of failing.

Prefect 3.8 opens SQLite transactions DEFERRED: a request that reads and then writes fails at once
(SQLITE_BUSY_SNAPSHOT, which the busy timeout does not cover; answered 503, and the client retries
about 2 s later) whenever another writer committed in between. The server's own task-run recorder
does so every time a subflow's task runs are stored while the next subflow is being created: one
503 and ~2 s in every `elt` run, and 503s on UI saves when the server is busy. BEGIN IMMEDIATE
takes the write lock first, so the busy timeout queues writers. A Postgres server is untouched.

Usage: python -m deployments.sqlite_server [prefect server start options]
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager

from prefect.server.database.configurations import AioSqliteConfiguration
from prefect.server.database.dependencies import set_database_config
from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction


class QueuedWritesSqliteConfiguration(AioSqliteConfiguration):
    """Prefect's SQLite configuration, every transaction begun IMMEDIATE (as Prefect itself does
    for `with_for_update`); reads outside a transaction stay concurrent under WAL."""

    @asynccontextmanager
    async def begin_transaction(
        self, session: AsyncSession, with_for_update: bool = False
    ) -> AsyncGenerator[AsyncSessionTransaction, None]:
        async with super().begin_transaction(session, with_for_update=True) as transaction:
            yield transaction


def queue_sqlite_writes() -> bool:
    """Make this process's Prefect server queue SQLite writes; False when its database is not
    SQLite (nothing to change)."""
    url = str(PREFECT_API_DATABASE_CONNECTION_URL.value())
    if not url.startswith("sqlite"):
        return False
    set_database_config(QueuedWritesSqliteConfiguration(connection_url=url))
    return True


def main(argv: Sequence[str]) -> None:
    queue_sqlite_writes()
    from prefect.cli import app

    sys.argv = ["prefect", "server", "start", *argv]  # as the `prefect` command would be called
    app()


if __name__ == "__main__":
    main(sys.argv[1:])
