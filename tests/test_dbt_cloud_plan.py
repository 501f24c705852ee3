"""What the dbt Cloud path does next and how it says what went wrong, as tables (no I/O)."""

from __future__ import annotations

import httpx
import pytest

from pipeline.dbt_cloud_plan import (
    LOG_TAIL_LINES,
    MalformedAnswer,
    NextStep,
    TriggerFault,
    failure_details,
    next_step,
    read_json,
    trigger_fault,
    what_happened,
)
from pipeline.transform_result import NodeResult

TRIGGER = httpx.Request(
    "POST", "https://cloud.getdbt.com/api/v2/accounts/1/jobs/7/run/", extensions={"timeout": {
        "connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}},
)  # fmt: skip


def answered(status: int) -> httpx.HTTPStatusError:
    response = httpx.Response(status, request=TRIGGER)
    return httpx.HTTPStatusError(f"HTTP {status}", request=TRIGGER, response=response)


@pytest.mark.parametrize(
    ("status", "rerun_failed_steps", "expected"),
    [
        (None, False, NextStep.TRIGGER),  # no run yet
        (1, False, NextStep.AWAIT),  # queued
        (2, True, NextStep.AWAIT),  # starting
        (3, False, NextStep.AWAIT),  # running
        (10, False, NextStep.REUSE),
        (10, True, NextStep.REUSE),
        (20, False, NextStep.TRIGGER),
        (20, True, NextStep.RERUN_FAILED_STEPS),
        (30, False, NextStep.TRIGGER),
        (30, True, NextStep.TRIGGER),  # nothing failed: a cancelled run is run again in full
        (99, False, NextStep.AWAIT),  # a status newer than this code: wait, the timeout bounds it
    ],
)
def test_a_stored_run_is_awaited_reused_or_run_again_by_its_status(
    status: int | None, rerun_failed_steps: bool, expected: NextStep
) -> None:
    assert next_step(status, rerun_failed_steps) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused", request=TRIGGER), TriggerFault.NOT_SENT),
        (httpx.ConnectTimeout("", request=TRIGGER), TriggerFault.NOT_SENT),
        (httpx.PoolTimeout("", request=TRIGGER), TriggerFault.NOT_SENT),
        (answered(429), TriggerFault.NOT_SENT),
        (httpx.ReadTimeout("", request=TRIGGER), TriggerFault.MAYBE_CREATED),
        (httpx.WriteTimeout("", request=TRIGGER), TriggerFault.MAYBE_CREATED),
        (httpx.ReadError("reset", request=TRIGGER), TriggerFault.MAYBE_CREATED),
        (httpx.RemoteProtocolError("closed", request=TRIGGER), TriggerFault.MAYBE_CREATED),
        (answered(500), TriggerFault.MAYBE_CREATED),
        (answered(502), TriggerFault.MAYBE_CREATED),
        (answered(504), TriggerFault.MAYBE_CREATED),
        (MalformedAnswer("not JSON"), TriggerFault.MAYBE_CREATED),  # a 200 made the run
        (answered(400), TriggerFault.REFUSED),
        (answered(401), TriggerFault.REFUSED),
        (answered(403), TriggerFault.REFUSED),
        (answered(404), TriggerFault.REFUSED),
        (RuntimeError("a bug"), TriggerFault.REFUSED),
    ],
)
def test_a_failed_trigger_is_sent_again_only_when_it_cannot_have_made_a_run(
    exc: BaseException, expected: TriggerFault
) -> None:
    assert trigger_fault(exc) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ReadTimeout("", request=TRIGGER), "no answer to POST /api/v2/accounts/1/jobs/7/run/ "
                                                 "within 5 s (ReadTimeout)"),
        (httpx.ReadError("", request=TRIGGER), "connection to dbt Cloud broke during POST /api/v2/"
                                               "accounts/1/jobs/7/run/ (ReadError: no detail)"),
        (answered(502), "answered POST /api/v2/accounts/1/jobs/7/run/ with HTTP 502 Bad Gateway"),
        (httpx.ReadTimeout(""), "no answer to a request (ReadTimeout)"),
    ],
)  # fmt: skip
def test_what_happened_names_the_request_and_its_fault_even_when_httpx_says_nothing(
    exc: BaseException, expected: str
) -> None:
    assert expected in what_happened(exc)


def test_a_malformed_answer_names_the_request_and_the_start_of_the_body() -> None:
    with pytest.raises(MalformedAnswer) as malformed:
        read_json(httpx.Response(200, text="<html>Bad Gateway</html>", request=TRIGGER))
    assert "POST /api/v2/accounts/1/jobs/7/run/" in str(malformed.value)
    assert "not JSON: '<html>Bad Gateway</html>'" in str(malformed.value)


def test_failure_details_give_the_message_each_node_error_in_full_and_step_log_tails() -> None:
    log = "\n".join(f"line {n}" for n in range(1, 41))
    run = {
        "status_message": "Step 2 failed",
        "run_steps": [
            {"name": "Clone git repository", "status_humanized": "Success", "logs": "ok"},
            {"name": "Invoke dbt with `dbt build`", "status_humanized": "Error", "logs": log},
        ],
    }
    node = NodeResult.of(
        "model.shop.orders", "error", 1.0, "Database Error in model orders\n  column x missing"
    )
    details = "\n".join(failure_details(run, [node, NodeResult.of("model.ok", "success", 1, "")]))
    assert "dbt Cloud says: Step 2 failed" in details
    assert "- model.shop.orders: Database Error in model orders\n    column x missing" in details
    assert "step `Invoke dbt with `dbt build`` (Error)" in details
    assert f"line {40 - LOG_TAIL_LINES + 1}" in details and "line 40" in details
    assert f"line {40 - LOG_TAIL_LINES}\n" not in details
    assert "Clone git repository" not in details and "model.ok" not in details


def test_failure_details_say_so_when_dbt_cloud_reported_nothing() -> None:
    assert failure_details({}, []) == [
        "dbt Cloud reported no failing node, step or message: open the run's logs"
    ]
