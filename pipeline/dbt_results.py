"""dbt results as Prefect artifacts: a table of every node, failures first, and links."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.artifacts import (
    acreate_link_artifact,
    acreate_markdown_artifact,
    acreate_table_artifact,
)

from pipeline.transform_result import TransformResult


def node_rows(result: TransformResult) -> list[dict[str, Any]]:
    """One table row per model, test or other node, failures first."""
    return [
        {
            "node": node.unique_id,
            "status": node.dbt_status,
            "seconds": node.seconds,
            "message": node.message,
        }
        for node in result.ordered_nodes()
    ]


def artifact_links_markdown(links: Sequence[tuple[str, str]], notes: Sequence[str] = ()) -> str:
    """The notes, then a Markdown list of links to run artifacts."""
    items = [f"- [{name}]({url})" for name, url in links]
    return "\n\n".join(part for part in ("\n".join(notes), "\n".join(items)) if part)


async def publish_transform_result(result: TransformResult) -> None:
    """The node table, the dbt Cloud run link and the artifact links, under the runner's keys."""
    key = result.artifact_key
    rows = node_rows(result)
    if rows:
        await acreate_table_artifact(
            key=f"{key}-results",
            table=rows,
            description="dbt nodes by status (failures first) and seconds",
        )
    if result.run_url:
        await acreate_link_artifact(
            key=f"{key}-run", link=result.run_url, link_text="dbt Cloud run"
        )
    if result.artifact_links or result.notes:
        await acreate_markdown_artifact(
            key=f"{key}-artifacts",
            markdown=artifact_links_markdown(result.artifact_links, result.notes),
        )
