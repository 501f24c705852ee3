"""Run the repository's dbt project with dbt Core in-process: plan what to build, run it with
dbt's own runner (one invocation, no task run per node), report progress and every node."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dbt.cli.main import dbtRunner, dbtRunnerResult
from dbt.version import __version__ as dbt_version
from dbt_common.events.base_types import EventMsg
from prefect import runtime
from prefect.logging import get_run_logger

from pipeline.build_plan import (
    BuildFacts,
    BuildPlan,
    LastBuild,
    plan_build,
    project_fingerprint,
    selects_itself,
)
from pipeline.transform_result import NodeResult, NodeStatus, TransformError, TransformResult

if TYPE_CHECKING:
    # Types only: the blocks import this machinery when they run, not the other way round.
    from blocks import DbtCoreTransform, Warehouse

RUNNER = "dbt Core"
LINKED_ARTIFACTS = ("run_results.json", "manifest.json")
BUILDS_TABLE = "_elt_dbt_builds"  # in the raw schema, beside the loader's own state
PROGRESS_EVERY_SECONDS = 10.0
# Flow runs whose dbt build failed in this process: their retry runs `dbt retry`.
_failed_builds: set[str] = set()


class DbtCoreError(TransformError):
    """dbt Core reported failing nodes (or could not run); its result names them."""


class DbtFreshnessError(DbtCoreError):
    """The freshness gate stopped the run before the build: a raw table is stale or missing."""


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


def default_target_dir(project_dir: Path) -> Path:
    """dbt's target path: DBT_TARGET_PATH (relative to the project, as dbt reads it) or target/."""
    # A read-only image (the Kubernetes Job) points this at a writable volume.
    return project_dir / (os.environ.get("DBT_TARGET_PATH") or "target")


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow or task run's logger, or this module's outside a run."""
    try:
        return get_run_logger()
    except Exception:  # no run context (a script or a test calling the block directly)
        return logging.getLogger("prefect.elt.dbt")


@dataclass
class DbtProgress:
    """A dbt callback: counts finished nodes, logs failures as they happen and a progress line
    at most every PROGRESS_EVERY_SECONDS (dbt's own console output is off)."""

    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    command: str
    total: int = 0
    done: int = 0
    failed: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    last_line: float = field(default_factory=time.perf_counter)

    def __call__(self, event: EventMsg) -> None:
        name = event.info.name
        if name == "ConcurrencyLine":
            self.total = int(event.data.node_count)
        elif name == "NodeFinished":
            self.done += 1
            info = event.data.node_info
            if NodeResult.of(info.unique_id, info.node_status, 0, "").status is NodeStatus.FAILED:
                self.failed.append(info.unique_id)
                self.logger.error("dbt %s: %s %s", self.command, info.unique_id, info.node_status)
            now = time.perf_counter()
            if now - self.last_line >= PROGRESS_EVERY_SECONDS:
                self.last_line = now
                self.logger.info("dbt %s: %s ...", self.command, self.line())

    def line(self) -> str:
        """`43/87 nodes done in 4.1 s`."""
        return f"{self.done}/{self.total} nodes done in {time.perf_counter() - self.started:.1f} s"


@dataclass
class DbtCore:
    """dbt's own runner on one project, profile and target. After `parse`, every command of
    the run reuses that manifest (the freshness gate costs no second parse)."""

    common_args: list[str]  # project, profiles, threads, target, target path
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    manifest: Any = None

    def parse(self, result: TransformResult) -> None:
        """Parse the project once for the commands that follow."""
        parsed = dbtRunner().invoke(["parse", *self.args()])
        if not parsed.success:
            raise DbtCoreError(f"dbt could not parse the project: {parsed.exception}", result)
        self.manifest = parsed.result

    def invoke(self, command: list[str], result: TransformResult) -> bool:
        """Run one dbt command, add its nodes to `result`; True when dbt reports success."""
        name = " ".join(word for word in command[:2] if not word.startswith("-"))
        progress = DbtProgress(self.logger, name)
        invocation = dbtRunner(manifest=self.manifest, callbacks=[progress]).invoke(
            [*command, *self.args()]
        )
        if invocation.exception is not None and invocation.result is None:
            raise DbtCoreError(f"dbt {name} could not run: {invocation.exception}", result)
        result.nodes.extend(node_results(invocation))
        progress.total = max(progress.total, progress.done)  # unit tests are not in dbt's count
        self.logger.info("dbt %s: %s", name, progress.line())
        return bool(invocation.success)

    def args(self) -> list[str]:
        # Console output off: DbtProgress reports. dbt.log keeps dbt's own lines at info: debug
        # adds every query and cost ~5% of a build (the compiled SQL is in the target path).
        return [*self.common_args, "--log-level", "none", "--log-level-file", "info"]


def read_last_build(warehouse: Warehouse, schema: str) -> LastBuild | None:
    """The build recorded for transform schema `schema`, if any."""
    with warehouse:
        if not warehouse.table_exists(BUILDS_TABLE):
            return None
        rows = warehouse.query(
            f"SELECT fingerprint, complete FROM {warehouse.qualified(BUILDS_TABLE)} "
            "WHERE transform_schema = ?",
            [schema],
        )
    return LastBuild(str(rows[0][0]), bool(rows[0][1])) if rows else None


def record_build(warehouse: Warehouse, schema: str, fingerprint: str, complete: bool) -> None:
    """Record what was built into `schema`, for the next run's plan."""
    with warehouse:
        warehouse.ensure_table(
            BUILDS_TABLE,
            "transform_schema VARCHAR, fingerprint VARCHAR, complete BOOLEAN, built_at TIMESTAMP",
        )
        warehouse.execute(
            f"MERGE INTO {warehouse.qualified(BUILDS_TABLE)} AS t USING (SELECT ? AS "
            "transform_schema, ? AS fingerprint, ? AS complete, ? AS built_at) AS s "
            "ON t.transform_schema = s.transform_schema WHEN MATCHED THEN UPDATE SET "
            "fingerprint = s.fingerprint, complete = s.complete, built_at = s.built_at "
            "WHEN NOT MATCHED THEN INSERT (transform_schema, fingerprint, complete, built_at) "
            "VALUES (s.transform_schema, s.fingerprint, s.complete, s.built_at)",
            [schema, fingerprint, complete, datetime.now(UTC).replace(tzinfo=None)],
        )


def this_flow_run() -> str:
    """The current flow run's id, "" outside one."""
    return str(runtime.flow_run.id or "")


def run_dbt_core(
    transform: DbtCoreTransform,
    warehouse: Warehouse,
    loaded: Collection[str] | None = None,
    full_refresh: bool = False,
    target_dir: Path | None = None,
) -> TransformResult:
    """Build what changed (`loaded`: raw tables that received rows; None builds everything),
    gated on source freshness when the block asks; raise on failures."""
    started = time.perf_counter()
    project_dir = Path(transform.project_dir).resolve()
    # Artifacts go to `target_dir`, else DBT_TARGET_PATH; dbt itself reads DBT_LOG_PATH.
    target_dir = (target_dir or default_target_dir(project_dir)).resolve()
    target = dbt_target(transform, warehouse)
    env = {**warehouse.dbt_env(), "ELT_DBT_THREADS": str(transform.threads)}
    schema = env["ELT_TRANSFORM_SCHEMA"]
    command = transform.command_words()
    fingerprint = project_fingerprint(
        project_dir, dbt_version, transform.command, target, ignore=[target_dir]
    )
    flow_run = this_flow_run()
    plan = plan_build(
        BuildFacts(
            fingerprint=fingerprint,
            last_build=read_last_build(warehouse, schema),
            loaded=None if loaded is None else frozenset(loaded),
            full_refresh=full_refresh,
            selects_itself=selects_itself(command),
            retrying=flow_run in _failed_builds and (target_dir / "run_results.json").exists(),
        )
    )
    result = TransformResult(
        RUNNER,
        artifact_links=[(name, (target_dir / name).as_uri()) for name in LINKED_ARTIFACTS],
        scope=plan.action,
        scope_reason=plan.reason,
    )
    logger = run_logger()
    logger.info("dbt: %s (%s)", describe_plan(plan), plan.reason)
    if plan.action == "nothing":
        result.seconds = time.perf_counter() - started
        return result
    common = [*transform.project_args(), "--target", target, "--target-path", str(target_dir)]
    try:
        with environment_variables(env):
            dbt = DbtCore(common, logger)
            try:
                run_planned(dbt, transform.freshness_gate, plan.dbt_args(command), result)
            finally:
                warehouse.close_dbt_connections()
    except DbtFreshnessError:
        raise  # nothing was built: the last build's record still holds
    except DbtCoreError:
        record_build(warehouse, schema, fingerprint, complete=False)
        if flow_run:  # outside a flow run there is no retry: the next call runs its command
            _failed_builds.add(flow_run)
        raise
    finally:
        result.seconds = time.perf_counter() - started
    record_build(warehouse, schema, fingerprint, complete=True)
    _failed_builds.discard(flow_run)
    return result


def run_planned(
    dbt: DbtCore, freshness_gate: bool, command: list[str], result: TransformResult
) -> None:
    """Gate on source freshness if asked, then run `command`; raise DbtCoreError on failures."""
    # A retry repeats an attempt whose gate passed. A lone command parses as it runs.
    if freshness_gate and command[0] != "retry":
        dbt.parse(result)
        if not dbt.invoke(["source", "freshness"], result):
            raise DbtFreshnessError(
                "dbt source freshness failed: a raw table is stale or missing; load it "
                "(extract_load) or turn off the freshness gate. "
                + "; ".join(result.failures or ["see the dbt log"]),
                result,
            )
    if not dbt.invoke(command, result):
        detail = "; ".join(result.failures or ["see the dbt log"])
        raise DbtCoreError(f"dbt {command[0]} failed: {detail}", result)


def describe_plan(plan: BuildPlan) -> str:
    """The plan in a few words for the log."""
    if plan.action == "downstream":
        return f"building what {', '.join(plan.sources)} feed"
    return {"everything": "building everything", "retry": "dbt retry", "nothing": "no build"}[
        plan.action
    ]
