"""dbt results as Prefect artifacts: a table of every model and test, failures first, and links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

FAILED = {"error", "fail", "runtime error"}
STATUS_ORDER = {"error": 0, "fail": 1, "runtime error": 2, "warn": 3, "skipped": 4}


def node_rows(run_results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per model, test or other node of run_results.json, failures first."""
    rows = [
        {
            "node": str(result.get("unique_id", "")),
            "status": str(result.get("status", "")),
            "seconds": round(float(result.get("execution_time") or 0.0), 2),
            "message": (str(result.get("message") or "")).strip().splitlines()[0:1][0]
            if result.get("message")
            else "",
        }
        for result in run_results.get("results", [])
    ]
    return sorted(rows, key=lambda row: (STATUS_ORDER.get(row["status"], 9), row["node"]))


def counts(run_results: Mapping[str, Any]) -> dict[str, int]:
    """How many models built and tests passed / failed."""
    tallies = {"models": 0, "tests_passed": 0, "tests_failed": 0, "errors": 0}
    for result in run_results.get("results", []):
        node, status = str(result.get("unique_id", "")), result.get("status")
        if node.startswith("model.") and status == "success":
            tallies["models"] += 1
        elif node.startswith(("test.", "unit_test.")):
            tallies["tests_passed" if status == "pass" else "tests_failed"] += status != "skipped"
        if status in FAILED and not node.startswith(("test.", "unit_test.")):
            tallies["errors"] += 1
    return tallies


def artifact_links_markdown(links: Sequence[tuple[str, str]]) -> str:
    """A Markdown list of links to run artifacts, as the seed's flow published them."""
    return "\n".join(f"- [{name}]({url})" for name, url in links)


def publish_run_results(run_results: Mapping[str, Any], key: str) -> None:
    """A table artifact of every node's status and time, failures first."""
    rows = node_rows(run_results)
    if rows:
        create_table_artifact(
            key=key, table=rows, description="dbt nodes by status (failures first) and seconds"
        )


def publish_links(links: Sequence[tuple[str, str]], key: str, run_url: str = "") -> None:
    """Link artifacts: the dbt Cloud run (when there is one) and each run artifact."""
    if run_url:
        create_link_artifact(key=f"{key}-run", link=run_url, link_text="dbt Cloud run")
    if links:
        create_markdown_artifact(key=f"{key}-artifacts", markdown=artifact_links_markdown(links))
