"""Embedded-default environments of a test's own, so runs touch no file of the repository."""

from __future__ import annotations

import uuid
from pathlib import Path

from blocks import ConsoleAlerts, DbtCoreTransform, DuckDBWarehouse, ELTEnvironment
from tests.conftest import REPO_ROOT


def save_embedded_environment(prefix: str, root: Path) -> tuple[str, DuckDBWarehouse]:
    """Save a new environment (DuckDB file under `root`, the repository's dbt project, console
    alerts) on the current Prefect API; return its name and warehouse."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    warehouse = DuckDBWarehouse(path=str(root / "warehouse.duckdb"))
    warehouse.save(name)
    DbtCoreTransform(
        project_dir=str(REPO_ROOT / "dbt"), profiles_dir=str(REPO_ROOT / "dbt"), threads=2
    ).save(name)
    ConsoleAlerts(environment_label=prefix).save(name)
    ELTEnvironment(
        warehouse=f"duckdb-warehouse/{name}",
        transform=f"dbt-core-transform/{name}",
        alerts=f"console-alerts/{name}",
    ).save(name)
    return name, warehouse
