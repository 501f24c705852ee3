"""Run the repository's dbt project with dbt Core through prefect-dbt: one task run per node."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from dbt.cli.main import dbtRunnerResult
from prefect_dbt.core.runner import PrefectDbtRunner
from prefect_dbt.core.settings import PrefectDbtSettings

from pipeline.transform_result import NodeResult, TransformError, TransformResult

if TYPE_CHECKING:
    # Types only: the blocks import this machinery when they run, not the other way round.
    from blocks import DbtCoreTransform, Warehouse

RUNNER = "dbt Core"
LINKED_ARTIFACTS = ("run_results.json", "manifest.json")


class DbtCoreError(TransformError):
    """dbt Core reported failing nodes (or could not run); its result names them."""


class DbtNode(Protocol):
    @property
    def unique_id(self) -> str: ...


class DbtNodeOutcome(Protocol):
    """What dbt's typed results (RunResult, SourceFreshnessResult) say about one node."""

    @property
    def node(self) -> DbtNode: ...
    @property
    def status(self) -> str: ...
    @property
    def message(self) -> str | None: ...
    @property
    def execution_time(self) -> float: ...


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


def node_result(outcome: DbtNodeOutcome) -> NodeResult:
    """One typed row from one of dbt's typed node results."""
    return NodeResult.of(
        outcome.node.unique_id, outcome.status, outcome.execution_time, outcome.message
    )


def node_results(invocation: dbtRunnerResult) -> list[NodeResult]:
    """The rows of a dbt invocation; none when dbt stopped before running nodes."""
    outcomes: Sequence[DbtNodeOutcome] = getattr(invocation.result, "results", None) or []
    return [node_result(outcome) for outcome in outcomes]


def dbt_target(transform: DbtCoreTransform, warehouse: Warehouse) -> str:
    """The profile target: the block's, or the warehouse's own when the block leaves it empty."""
    return transform.target or warehouse.dbt_target


def invoke(runner: PrefectDbtRunner, command: list[str], result: TransformResult) -> bool:
    """Run one dbt command, add its nodes to `result`; True when dbt reports success."""
    try:
        invocation: dbtRunnerResult = runner.invoke(command)
    except ValueError as exc:  # prefect-dbt's wording when dbt itself raised (e.g. a parse error)
        raise DbtCoreError(f"dbt {' '.join(command[:2])} could not run: {exc}", result) from exc
    result.nodes.extend(node_results(invocation))
    return bool(invocation.success)


def default_target_dir(project_dir: Path) -> Path:
    """dbt's target path: DBT_TARGET_PATH (relative to the project, as dbt reads it) or target/."""
    # A read-only image (the Kubernetes Job) points this at a writable volume.
    return project_dir / (os.environ.get("DBT_TARGET_PATH") or "target")


def run_dbt_core(
    transform: DbtCoreTransform, warehouse: Warehouse, target_dir: Path | None = None
) -> TransformResult:
    """Optionally gate on source freshness, then run the block's command; raise on failures."""
    started = time.perf_counter()
    project_dir = Path(transform.project_dir).resolve()
    # Artifacts go to `target_dir`, else DBT_TARGET_PATH; dbt itself reads DBT_LOG_PATH.
    target_dir = (target_dir or default_target_dir(project_dir)).resolve()
    target = dbt_target(transform, warehouse)
    settings = PrefectDbtSettings(
        project_dir=project_dir,
        profiles_dir=Path(transform.profiles_dir).resolve(),
        target_path=target_dir,
    )
    runner = PrefectDbtRunner(settings=settings, raise_on_failure=False, disable_assets=True)
    result = TransformResult(
        RUNNER, artifact_links=[(name, (target_dir / name).as_uri()) for name in LINKED_ARTIFACTS]
    )
    env = {**warehouse.dbt_env(), "ELT_DBT_THREADS": str(transform.threads)}
    try:
        with environment_variables(env):
            if transform.freshness_gate and not invoke(
                runner, ["source", "freshness", "--target", target], result
            ):
                raise DbtCoreError(
                    "dbt source freshness failed: a raw table is stale or missing; load it "
                    "(extract_load) or turn off the freshness gate. "
                    + "; ".join(result.failures or ["see the dbt log"]),
                    result,
                )
            command = [*transform.command_args(), "--target", target]
            if not invoke(runner, command, result):
                detail = "; ".join(result.failures or ["see the dbt log"])
                raise DbtCoreError(f"dbt {command[0]} failed: {detail}", result)
    finally:
        result.seconds = time.perf_counter() - started
    return result
