"""State hooks that turn a failed or crashed run into exactly one alert, never a second failure."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prefect import runtime
from prefect.client.schemas.objects import FlowRun, State, TaskRun
from prefect.context import FlowRunContext

from blocks import Alert, AlertSink, load_environment

logger = logging.getLogger("prefect.elt.alerts")

# Root flow runs already alerted for: a failing task, its subflow and the parent flow are one
# failure, so only the first hook to see it posts.
_alerted_root_runs: set[str] = set()


def first_alert_for_this_run(flow_run: FlowRun) -> bool:
    """True once per root flow run (subflows share their parent's root)."""
    root = str(runtime.flow_run.root_flow_run_id or flow_run.id)
    if root in _alerted_root_runs:
        return False
    _alerted_root_runs.add(root)
    return True


def failure_reason(state: State) -> str:
    """The exception type and message behind a state, or the state's own message."""
    exc = state.result(raise_on_failure=False) if state.data is not None else None
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return state.message or state.name or "unknown"


def dbt_cloud_run_url(state: State) -> str:
    """The dbt Cloud run link carried by a dbt Cloud failure, if any."""
    exc = state.result(raise_on_failure=False) if state.data is not None else None
    return str(getattr(exc, "run_url", "") or "")


def alert_sink(flow_run: FlowRun) -> AlertSink:
    """Where this run's environment sends alerts."""
    environment = str((flow_run.parameters or {}).get("environment", "local"))
    return load_environment(environment).alerts


def deliver(flow_run: FlowRun, alert: Alert) -> None:
    """Send an alert; a broken sink is logged and never replaces the run's own failure."""
    try:
        alert_sink(flow_run).send(alert)
    except Exception as exc:
        logger.warning(
            "Could not deliver the alert for flow run %s (%s): %s: %s",
            flow_run.name, alert.state, type(exc).__name__, exc,
        )  # fmt: skip


def build_alert(flow_name: str, flow_run: FlowRun, state: State, failing_task: str = "") -> Alert:
    """Describe a failed or crashed run for a person."""
    return Alert(
        flow_name=flow_name,
        flow_run_name=flow_run.name,
        flow_run_id=str(flow_run.id),
        state=state.name or state.type.value,
        reason=failure_reason(state),
        occurred_at=(state.timestamp or datetime.now(UTC)).astimezone(UTC),
        deployment=str(runtime.deployment.name or ""),
        failing_task=failing_task,
        dbt_cloud_run_url=dbt_cloud_run_url(state),
    )


def alert_on_flow_failure(flow: Any, flow_run: FlowRun, state: State) -> None:
    """`on_failure` / `on_crashed` hook for flows: one alert unless a task already sent it."""
    if first_alert_for_this_run(flow_run):
        deliver(flow_run, build_alert(flow.name, flow_run, state))


def alert_on_task_failure(task: Any, task_run: TaskRun, state: State) -> None:
    """`on_failure` hook for tasks whose failure needs its own words (a table load, a dbt run)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    flow_run = context.flow_run
    if first_alert_for_this_run(flow_run):
        flow_name = context.flow.name if context.flow else ""
        deliver(flow_run, build_alert(flow_name, flow_run, state, task_run.name))


FLOW_HOOKS: dict[str, Any] = {
    "on_failure": [alert_on_flow_failure],
    "on_crashed": [alert_on_flow_failure],
}
