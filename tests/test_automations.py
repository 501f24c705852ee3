"""Automations declared in deployments/ back the hooks up: applied once, and fire on a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from blocks import SlackAlerts, load_environment
from deployments.automations import apply_automations, automation_name
from tests.conftest import REPO_ROOT
from tests.support.environments import save_environment, slack_alerts

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def slack_environment(httpserver: HTTPServer) -> tuple[str, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def handle(request: Request) -> Response:
        received.append(json.loads(request.data))
        return Response("ok")

    httpserver.expect_request("/automation-hook").respond_with_handler(handle)
    name = f"auto-{uuid.uuid4().hex[:8]}"
    save_environment(
        name, alerts=slack_alerts(httpserver.url_for("/automation-hook"), environment_label=name)
    )
    return name, received


def slack_alerts_of(environment: str) -> SlackAlerts:
    alerts = load_environment(environment).alerts
    assert isinstance(alerts, SlackAlerts)
    return alerts


def test_applying_the_automations_twice_leaves_one_of_each(
    slack_environment: tuple[str, list[dict[str, Any]]],
) -> None:
    environment, _ = slack_environment
    first = apply_automations(environment, slack_alerts_of(environment))
    second = apply_automations(environment, slack_alerts_of(environment))
    assert first == second and len(first) == 3
    with get_client(sync_client=True) as client:
        for name in first:
            assert len(client.read_automations_by_name(name)) == 1
        optional = client.read_automations_by_name(automation_name(environment, "every-failed-run"))
    assert optional[0].enabled is False


def wait_for(condition: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


# The crash automation waits a minute for the hooks' word before it posts; then Slack is called.
AUTOMATION_WAIT_SECONDS = 60 + 30


def crash_a_served_run(
    environment: str, prefect_api: str, kill: signal.Signals, hooks: bool
) -> tuple[Any, subprocess.Popen[bytes]]:
    """Serve the crash-test flow, start a run, and send `kill` to its process once Running."""
    runner = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests/support/crashing_flow.py"), environment,
         *(["--hooks"] if hooks else [])],
        env={**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1",
             "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    with get_client(sync_client=True) as client:
        deployment = wait_for(
            lambda: _deployment(client, "extract-load/crash-test"), 90, "the served deployment"
        )
        flow_run = client.create_flow_run_from_deployment(deployment.id)
        wait_for(lambda: client.read_flow_run(flow_run.id).state_name == "Running", 90, "Running")
        flow_process = wait_for(lambda: _children(runner.pid), 30, "the flow's process")
        for pid in flow_process:
            os.kill(pid, kill)
        wait_for(lambda: client.read_flow_run(flow_run.id).state_name == "Crashed", 60, "Crashed")
    return flow_run, runner


@pytest.mark.parametrize("attempt", range(int(os.environ.get("ELT_CRASH_ATTEMPTS", "1"))))
def test_a_flow_process_killed_from_outside_alerts_once_through_the_automation(
    slack_environment: tuple[str, list[dict[str, Any]]], prefect_api: str, attempt: int
) -> None:
    # Slow (~75 s): the automation posts after a minute without the hooks' word.
    environment, received = slack_environment
    apply_automations(environment, slack_alerts_of(environment))
    # As an OOM kill of the pod would: no hook can run (this runner would run them).
    flow_run, runner = crash_a_served_run(environment, prefect_api, signal.SIGKILL, hooks=False)
    try:
        wait_for(lambda: received, AUTOMATION_WAIT_SECONDS, "the automation's Slack message")
        time.sleep(10)  # a second message would follow within the periodic evaluation (5 s)
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    assert len(received) == 1, [m["text"][:60] for m in received]
    message = json.dumps(received[0])
    assert "Crashed" in message and "extract-load" in message
    # A link when the server knows its UI URL, else the run's id: never "Open the run: None".
    assert str(flow_run.id) in message and "None" not in message


def test_a_run_whose_hooks_alerted_on_a_crash_gets_no_second_message_from_the_automation(
    slack_environment: tuple[str, list[dict[str, Any]]], prefect_api: str
) -> None:
    # Slow (~90 s): proving the automation stays silent means waiting out its minute.
    environment, received = slack_environment
    apply_automations(environment, slack_alerts_of(environment))
    # A pod's eviction: the flow's on_crashed hook runs and alerts.
    _, runner = crash_a_served_run(environment, prefect_api, signal.SIGTERM, hooks=True)
    try:
        wait_for(lambda: received, 60, "the hook's Slack message")
        time.sleep(AUTOMATION_WAIT_SECONDS)
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    assert len(received) == 1, [m["text"][:60] for m in received]
    assert "blocks" in received[0]  # the hook's Block Kit message, not the automation's text
    assert "Crashed" in json.dumps(received[0])


def _deployment(client: Any, name: str) -> Any:
    try:
        return client.read_deployment_by_name(name)
    except Exception:
        return None


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(child) for child in found.split()]
