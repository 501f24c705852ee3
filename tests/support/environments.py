"""Environments of a test's own, saved as documents so runs touch no file of the repository."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate
from prefect.exceptions import ObjectNotFound
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


def save_document_data(slug: str, name: str, data: dict[str, Any]) -> UUID:
    """Create or replace the document `slug/name` with `data` as the UI's form posts it (no
    client-side validation); return its id."""
    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug(slug)
        schema = client.get_most_recent_block_schema_for_block_type(block_type.id)
        assert schema is not None, f"{slug} is not registered"
        try:
            existing = client.read_block_document_by_name(name, slug)
        except ObjectNotFound:
            created = client.create_block_document(
                BlockDocumentCreate(
                    name=name, data=data, block_schema_id=schema.id, block_type_id=block_type.id
                )
            )
            return created.id
        client.update_block_document(
            existing.id,
            BlockDocumentUpdate(data=data, block_schema_id=schema.id, merge_existing_data=False),
        )
        return existing.id


def link(block: Block) -> dict[str, Any]:
    """A reference to a saved document, as the UI's document picker stores it."""
    return {"$ref": {"block_document_id": str(block._block_document_id)}}
