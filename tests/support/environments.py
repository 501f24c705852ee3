"""Environments of a test's own, saved as documents so runs touch no file of the repository."""

from __future__ import annotations

import uuid
from pathlib import Path

from prefect.blocks.core import Block
from prefect_slack import SlackWebhook

from blocks import (
    ConsoleAlerts,
    DbtCoreTransform,
    DuckDBWarehouse,
    ELTEnvironment,
    SlackAlerts,
    Warehouse,
)
from tests.conftest import REPO_ROOT


def save_environment(
    name: str,
    *,
    warehouse: Warehouse | None = None,
    transform: Block | None = None,
    alerts: Block | None = None,
) -> ELTEnvironment:
    """Save each given block (embedded defaults for the rest) and an environment using them,
    all under `name`; nested documents a block holds are saved first, as setup does."""
    documents = {
        "warehouse": warehouse or DuckDBWarehouse(),
        "transform": transform or DbtCoreTransform(),
        "alerts": alerts or ConsoleAlerts(environment_label=name),
    }
    for block in documents.values():
        for nested in block.__dict__.values():
            if isinstance(nested, Block) and nested._block_document_id is None:
                nested.save(name, overwrite=True)
        block.save(name, overwrite=True)
    environment = ELTEnvironment(**documents)
    environment.save(name, overwrite=True)
    return environment


def slack_alerts(url: str, **settings: str) -> SlackAlerts:
    """Slack alerts posting to `url` through a prefect-slack webhook document of their own."""
    return SlackAlerts(webhook=SlackWebhook(url=url), **settings)


def save_embedded_environment(prefix: str, root: Path) -> tuple[str, DuckDBWarehouse]:
    """Save a new environment (DuckDB file under `root`, the repository's dbt project, console
    alerts) on the current Prefect API; return its name and warehouse."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    warehouse = DuckDBWarehouse(path=str(root / "warehouse.duckdb"))
    save_environment(
        name,
        warehouse=warehouse,
        transform=DbtCoreTransform(
            project_dir=str(REPO_ROOT / "dbt"), profiles_dir=str(REPO_ROOT / "dbt"), threads=2
        ),
        alerts=ConsoleAlerts(environment_label=prefix),
    )
    return name, warehouse
