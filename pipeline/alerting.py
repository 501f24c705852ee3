"""State hooks that turn a failed or crashed run into exactly one alert naming every cause.

The run at the root of a failure alerts: a failing task or subflow raises into its caller, so
the root flow's hook sees the whole failure (every failed table, every failed dbt node). Task
hooks only add context to the exception; subflows leave the alert to their caller. Every hook
says on the event bus that the run's alert is taken care of, so the automation that backs the
hooks up (a killed pod runs no hook) stays silent for it.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from prefect import runtime
from prefect.client.schemas.objects import FlowRun, State
from prefect.events import Event, emit_event
from prefect.events.worker import EventsWorker

from blocks import Alert, AlertSink, ConsoleAlerts, load_environment
from blocks.environment import alerts_reference, load_block
from pipeline.failures import failed_parts, failure_of, failure_reason
from pipeline.loading import TableLoad

logger = logging.getLogger("prefect.elt.alerts")

ALERT_HANDLED_EVENT = "elt.alert.handled"


def alert_sink(flow_run: FlowRun) -> AlertSink:
    """Where this run's environment sends alerts."""
    return environment_alerts(str((flow_run.parameters or {}).get("environment", "local")))


def environment_alerts(environment: str) -> AlertSink:
    """The environment's alerts; when the environment does not load, the alerts document it
    links; when that fails too, the log."""
    try:
        return load_environment(environment).alerts
    except Exception as exc:
        broken = exc
    try:
        linked = load_block(alerts_reference(environment))
        if not isinstance(linked, AlertSink):
            raise TypeError(f"{type(linked).__name__} is not an alerts block")
    except Exception as exc:
        # Nothing of the environment loads: the log is the one place left.
        logger.error(
            "Environment %r did not load, so this alert goes to the run's log only: %s (its "
            "alerts document: %s)", environment, broken, exc,
        )  # fmt: skip
        return ConsoleAlerts(environment_label=environment[:40] or "unknown")
    logger.error(
        "Environment %r did not load, so this alert goes to the alerts document it links: %s",
        environment, broken,
    )  # fmt: skip
    return linked


def deliver(flow_run: FlowRun, alert: Alert) -> bool:
    """Send an alert; a broken sink is logged with the alert (False), never replacing the
    run's failure."""
    sink = alert_sink(flow_run)
    try:
        sink.send(alert)
    except Exception as exc:
        logger.warning(
            "Could not deliver the alert for flow run %s (%s): %s: %s",
            flow_run.name, alert.state, type(exc).__name__, exc,
        )  # fmt: skip
        ConsoleAlerts(environment_label=sink.environment_label).send(alert)
        return False
    return True


def build_alert(flow_name: str, flow_run: FlowRun, state: State) -> Alert:
    """Describe a failed or crashed run for a person."""
    exc = failure_of(state)
    return Alert(
        flow_name=flow_name,
        flow_run_name=flow_run.name,
        flow_run_id=str(flow_run.id),
        state=state.name or state.type.value,
        reason=failure_reason(state),
        occurred_at=(state.timestamp or datetime.now(UTC)).astimezone(UTC),
        deployment=str(runtime.deployment.name or ""),
        failed=failed_parts(exc),
        dbt_cloud_run_url=str(getattr(exc, "run_url", "") or ""),
    )


def announce_handled(flow_name: str, flow_run: FlowRun, state: State, how: str) -> None:
    """Say on the event bus that this run's alert is taken care of (sent, or left to its
    caller), after the state change that made it, for the backing-up automation; wait (10 s at
    most) until the event has left: a stopping pod may exit right after its hooks."""
    emit_event(
        event=ALERT_HANDLED_EVENT,
        resource={
            "prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
            "prefect.resource.name": flow_run.name,
        },
        # The same related resources as the run's own state events, so the automation's
        # filters (flow name, `env:` tag) match this event as they match the state change.
        related=[
            {
                "prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": flow_name,
            },
            *(
                {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
                for tag in flow_run.tags
            ),
        ],
        payload={"how": how, "state": state.name or state.type.value},
        # A state change's event carries the state's id: the triggers read this one after it.
        follows=Event(
            id=state.id,
            occurred=state.timestamp or datetime.now(UTC),
            event=f"prefect.flow-run.{state.name}",
            resource={"prefect.resource.id": f"prefect.flow-run.{flow_run.id}"},
        ),
    )
    drain_events(timeout=10)


def drain_events(timeout: float) -> None:
    """Wait until the events emitted so far have left the process (or `timeout` passed)."""
    # On an async flow's event loop drain_all would hand back an awaitable and wait for nothing;
    # a thread of its own runs no loop.
    drain = threading.Thread(
        target=EventsWorker.drain_all, kwargs={"timeout": timeout, "at_exit": False}
    )
    drain.start()
    drain.join(timeout + 1)


def alert_on_flow_failure(flow: Any, flow_run: FlowRun, state: State) -> None:
    """`on_failure` / `on_crashed` hook for flows: the root run sends the one alert."""
    if flow_run.parent_task_run_id is not None:
        # A subflow's failure raises into its caller, whose own hook reports all of it.
        announce_handled(flow.name, flow_run, state, "reported by the calling flow")
        return
    if deliver(flow_run, build_alert(flow.name, flow_run, state)):
        announce_handled(flow.name, flow_run, state, "alert sent")


def reported_rows(result: Any) -> list[str]:
    """The loaded-and-reported rows (untrusted cursors) in a flow's result, a line per table."""
    loads = result if isinstance(result, list) else (result[0] if isinstance(result, tuple) else [])
    return [
        f"{load.table}: {load.untrusted_count:,} rows loaded with an untrusted cursor, e.g. "
        + "; ".join(str(row) for row in load.untrusted_rows[:3])
        for load in loads
        if isinstance(load, TableLoad) and load.untrusted_count
    ]


def alert_on_reported_rows(flow: Any, flow_run: FlowRun, state: State) -> None:
    """`on_completion` hook: a run that loaded rows it was told to report says so, once."""
    if flow_run.parent_task_run_id is not None:
        return  # the calling flow's result holds the same loads
    # _sync: in an async flow's hook (elt's) Prefect would hand back a coroutine instead.
    lines = reported_rows(state.result(raise_on_failure=False, _sync=True))  # type: ignore[call-overload]
    if lines:
        alert = build_alert(flow.name, flow_run, state)
        deliver(flow_run, alert.model_copy(update={
            "state": "Completed, with rows to check",
            "reason": " | ".join(lines),
        }))  # fmt: skip


FLOW_HOOKS: dict[str, Any] = {
    "on_failure": [alert_on_flow_failure],
    "on_crashed": [alert_on_flow_failure],
    "on_completion": [alert_on_reported_rows],
}
