"""What to do next with a dbt Cloud run or a failed request, and how to tell a person: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
from prefect_dbt.cloud.runs import DbtCloudJobRunStatus

from pipeline.transform_result import NodeResult, NodeStatus

SUCCESS = DbtCloudJobRunStatus.SUCCESS.value
ERROR = DbtCloudJobRunStatus.FAILED.value
CANCELLED = DbtCloudJobRunStatus.CANCELLED.value
ENDED = {SUCCESS: "succeeded", ERROR: "errored", CANCELLED: "was cancelled"}
LOG_TAIL_LINES = 15


class MalformedAnswer(ValueError):
    """dbt Cloud (or something in front of it) answered 200 with a body we can't read."""


class NextStep(StrEnum):
    """What a flow run does with the dbt Cloud run it may have started before."""

    TRIGGER = "trigger a new run"
    AWAIT = "wait for the run"
    REUSE = "reuse the finished run"
    RERUN_FAILED_STEPS = "re-run the failed steps"


def next_step(status: int | None, rerun_failed_steps: bool) -> NextStep:
    """Queued/running: wait; succeeded: reuse; errored: re-run (failed steps if asked); else new."""
    if status is None or status == CANCELLED:
        return NextStep.TRIGGER
    if status == SUCCESS:
        return NextStep.REUSE
    if status == ERROR:
        return NextStep.RERUN_FAILED_STEPS if rerun_failed_steps else NextStep.TRIGGER
    return NextStep.AWAIT  # queued, starting, running (or a status newer than this code)


class TriggerFault(StrEnum):
    """What a failed `POST .../run/` means for the run it asked for."""

    NOT_SENT = "never reached dbt Cloud: send it again"
    MAYBE_CREATED = "may have created the run: look for it before sending again"
    REFUSED = "refused: sending it again can't help"


def trigger_fault(exc: BaseException) -> TriggerFault:
    """Whether dbt Cloud may have created the run although its answer did not arrive."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return TriggerFault.NOT_SENT
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status == 429:  # rate limited before doing anything
            return TriggerFault.NOT_SENT
        return TriggerFault.MAYBE_CREATED if status >= 500 else TriggerFault.REFUSED
    if isinstance(exc, httpx.TransportError | MalformedAnswer):  # lost or unreadable answer
        return TriggerFault.MAYBE_CREATED
    return TriggerFault.REFUSED


def is_transient(exc: BaseException, not_found_is_transient: bool = False) -> bool:
    """Worth asking again: connection faults, 429, 5xx (and 404 just after a trigger)."""
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status == 429 or status >= 500 or (status == 404 and not_found_is_transient)
    return False


def _request_name(exc: BaseException) -> str:
    request = getattr(exc, "_request", None)  # httpx's `.request` raises when it was never set
    return f"{request.method} {request.url.path}" if request else "a request"


def what_happened(exc: BaseException) -> str:
    """One clause naming the request and its fault; never empty, never the API key."""
    request = _request_name(exc)
    if isinstance(exc, httpx.TimeoutException):
        timeouts = exc._request.extensions.get("timeout", {}) if exc._request else {}
        seconds = timeouts.get("read") or timeouts.get("connect")
        within = f" within {seconds:g} s" if seconds else ""
        return f"dbt Cloud gave no answer to {request}{within} ({type(exc).__name__})"
    if isinstance(exc, httpx.HTTPStatusError):
        status = f"{exc.response.status_code} {exc.response.reason_phrase}"
        return f"dbt Cloud answered {request} with HTTP {status}"
    if isinstance(exc, httpx.TransportError):
        detail = str(exc) or "no detail"
        return (
            f"the connection to dbt Cloud broke during {request} ({type(exc).__name__}: {detail})"
        )
    if isinstance(exc, MalformedAnswer):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def what_to_do(exc: BaseException) -> str:
    """The fix a person can apply for this fault."""
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (401, 403):
        return (
            "check the API key (a service token allowed to run jobs) and the account ID in the "
            "dbt-cloud-transform block's dbt Cloud credentials"
        )
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 404:
        return "check the job ID and the account ID in the dbt-cloud-transform block"
    if isinstance(exc, MalformedAnswer):
        return (
            "check that the credentials' access URL host (`domain`) is your dbt Cloud host and "
            "that no proxy answers in its place"
        )
    return "dbt Cloud may be down or slow (see status.getdbt.com): retry the flow run later"


def read_json(response: httpx.Response) -> Any:
    """The answer's JSON, or MalformedAnswer naming the request and the start of the body."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        start = response.text[:80].replace("\n", " ")
        raise MalformedAnswer(
            f"dbt Cloud answered {response.request.method} {response.request.url.path} with "
            f"HTTP {response.status_code} but not JSON: {start!r}"
        ) from None


def run_data(payload: Any, request: str) -> dict[str, Any]:
    """`data` of a run answer, with at least an integer `id`; MalformedAnswer otherwise."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), int):
        raise MalformedAnswer(
            f"dbt Cloud answered {request} without a run id: {str(payload)[:80]!r}"
        )
    return dict(data)


def failing_step_lines(run: Mapping[str, Any]) -> list[str]:
    """Each errored or cancelled step, with the tail of its log."""
    lines = []
    for step in run.get("run_steps") or []:
        if str(step.get("status_humanized", "")).lower() not in {"error", "cancelled"}:
            continue
        log = str(step.get("truncated_debug_logs") or step.get("logs") or "")
        tail = [line.rstrip() for line in log.splitlines() if line.strip()][-LOG_TAIL_LINES:]
        lines.append(f"- step `{step.get('name', 'step')}` ({step.get('status_humanized')})")
        lines += [f"    {line}" for line in tail]
    return lines


def failure_details(run: Mapping[str, Any], nodes: Sequence[NodeResult]) -> list[str]:
    """What dbt Cloud said about a failed run: its message, failing nodes in full, failing steps."""
    lines = []
    if run.get("status_message"):
        lines.append(f"dbt Cloud says: {str(run['status_message']).strip()}")
    failed = sorted(
        (node for node in nodes if node.status is NodeStatus.FAILED), key=lambda n: n.unique_id
    )
    if failed:
        lines.append("Failing nodes:")
    for node in failed:
        message = node.full_message.splitlines() or [""]
        lines.append(f"- {node.unique_id}: {message[0]}".rstrip(": "))
        lines += [f"    {line.strip()}" for line in message[1:]]
    steps = failing_step_lines(run)
    if steps:
        lines.append("Failing steps:")
    lines += steps
    if not lines:
        lines.append("dbt Cloud reported no failing node, step or message: open the run's logs")
    return lines


@dataclass(frozen=True)
class RunRef:
    """Which dbt Cloud run a message is about, and where a person opens it."""

    account_id: int
    job_id: int
    run_id: int | None = None
    url: str = ""

    @property
    def name(self) -> str:
        job = f"job {self.job_id} (account {self.account_id})"
        return f"dbt Cloud run {self.run_id} of {job}" if self.run_id else f"dbt Cloud {job}"

    @property
    def link(self) -> str:
        return f"Open the run: {self.url}" if self.url else "No run was started"
