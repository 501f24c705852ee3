"""Run the repository's dbt project with dbt Core through prefect-dbt: one task run per node."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_dbt.core.runner import PrefectDbtRunner
from prefect_dbt.core.settings import PrefectDbtSettings

from blocks import DbtCoreTransform, Warehouse


class DbtCoreError(RuntimeError):
    """dbt Core reported failing nodes (or could not run); names them."""

    def __init__(
        self,
        message: str,
        failures: list[str] | None = None,
        run_results: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.failures = failures or []
        self.run_results = run_results or {}


@dataclass
class DbtCoreResult:
    """What a dbt Core invocation did: its parsed run_results.json and where artifacts are."""

    command: list[str]
    target_dir: Path
    run_results: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        return failing_nodes(self.run_results)


@contextmanager
def environment_variables(values: Mapping[str, str]) -> Iterator[None]:
    """Set env vars for the block of code (dbt's profile reads them), then restore the old ones."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def failing_nodes(run_results: Mapping[str, Any]) -> list[str]:
    """unique_ids of nodes that errored or failed, with their messages."""
    failing = []
    for result in run_results.get("results", []):
        if result.get("status") in {"error", "fail", "runtime error"}:
            message = (result.get("message") or "").strip().splitlines()
            failing.append(f"{result.get('unique_id')}: {message[0] if message else ''}".strip())
    return failing


def dbt_target(transform: DbtCoreTransform, warehouse: Warehouse) -> str:
    """The profile target: the block's, or the warehouse's own when the block leaves it empty."""
    return transform.target or warehouse.dbt_target


def default_target_dir(project_dir: Path) -> Path:
    """dbt's target path: DBT_TARGET_PATH (relative to the project, as dbt reads it) or target/."""
    # A read-only image (the Kubernetes Job) points this at a writable volume.
    return project_dir / (os.environ.get("DBT_TARGET_PATH") or "target")


def run_dbt_core(
    transform: DbtCoreTransform, warehouse: Warehouse, target_dir: Path | None = None
) -> DbtCoreResult:
    """Optionally gate on source freshness, then run the block's command; raise on failures.

    Artifacts go to `target_dir`, else DBT_TARGET_PATH; dbt itself reads DBT_LOG_PATH for logs/.
    """
    project_dir = Path(transform.project_dir).resolve()
    target_dir = (target_dir or default_target_dir(project_dir)).resolve()
    target = dbt_target(transform, warehouse)
    settings = PrefectDbtSettings(
        project_dir=project_dir,
        profiles_dir=Path(transform.profiles_dir).resolve(),
        target_path=target_dir,
    )
    runner = PrefectDbtRunner(settings=settings, raise_on_failure=False, disable_assets=True)
    env = {**warehouse.dbt_env(), "ELT_DBT_THREADS": str(transform.threads)}
    with environment_variables(env):
        if transform.freshness_gate:
            freshness = runner.invoke(["source", "freshness", "--target", target])
            if not freshness.success:
                raise DbtCoreError(
                    "dbt source freshness failed: a raw table is stale or missing; load it "
                    f"(extract_load) or turn off the freshness gate. {freshness.exception or ''}"
                )
        command = [*transform.command_args(), "--target", target]
        outcome = runner.invoke(command)
    result = DbtCoreResult(command, target_dir, read_run_results(target_dir))
    if not outcome.success:
        failures = result.failures
        detail = "; ".join(failures) if failures else str(outcome.exception or "see the dbt log")
        raise DbtCoreError(f"dbt {command[0]} failed: {detail}", failures, result.run_results)
    return result


def read_run_results(target_dir: Path) -> dict[str, Any]:
    """Parsed run_results.json, or {} when dbt stopped before writing it."""
    path = target_dir / "run_results.json"
    return json.loads(path.read_text()) if path.exists() else {}
