"""dbt Cloud jobs through prefect-dbt's client, against a local HTTPS dbt Cloud stand-in."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.variables import Variable
from prefect_dbt.cloud import DbtCloudCredentials
from pytest_httpserver import HTTPServer

import pipeline.dbt_cloud
from blocks import DbtCloudTransform, DuckDBWarehouse
from flows.transform import transform
from pipeline.dbt_cloud import DbtCloudAuthError, DbtCloudError, JobRuns, run_dbt_cloud_job
from pipeline.transform_result import NodeStatus, TransformResult
from tests.support.artifacts import latest_artifact
from tests.support.dbt_cloud import ACCOUNT, JOB, PROJECT, UI_HOST, FakeDbtCloud
from tests.support.environments import save_environment

pytestmark = pytest.mark.usefixtures("prefect_api")
API_KEY = "dbtc_never_in_messages"
RERUN = f"POST /api/v2/accounts/{ACCOUNT}/jobs/{JOB}/rerun/"
CANCEL = f"POST /api/v2/accounts/{ACCOUNT}/runs/"
RESULTS = {
    "results": [
        {"unique_id": "model.jaffle_shop.orders", "status": "success", "execution_time": 1.2},
        {"unique_id": "test.jaffle_shop.unique_orders_order_id", "status": "fail",
         "execution_time": 0.3, "message": "Got 2 results, configured to fail if != 0"},
    ]
}  # fmt: skip


def run_page(run_id: int) -> str:
    """The run's page in the dbt Cloud UI, as the stand-in's `href` gives it."""
    return f"https://{UI_HOST}/deploy/{ACCOUNT}/projects/{PROJECT}/runs/{run_id}/"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.dbt_cloud, "BACKOFF_SECONDS", 0.05)


@pytest.fixture
def block(dbt_cloud_server: tuple[HTTPServer, Path]) -> DbtCloudTransform:
    server, _ = dbt_cloud_server
    credentials = DbtCloudCredentials(
        api_key=API_KEY, account_id=ACCOUNT, domain=f"127.0.0.1:{server.port}"
    )
    return DbtCloudTransform(
        credentials=credentials, job_id=JOB, poll_interval_seconds=1, timeout_seconds=60
    )


@pytest.fixture
def environment(block: DbtCloudTransform, dbt_cloud: FakeDbtCloud) -> str:
    """A saved environment whose transform is `block` (alerts: the console); its runs get ids of
    their own, so the artifacts of this test's run are told apart from earlier tests' ones."""
    dbt_cloud.next_run_id = 10_000 + uuid.uuid4().int % 1_000_000
    name = f"cloud-{uuid.uuid4().hex[:8]}"
    save_environment(name, transform=block)
    return name


@flow
def cloud_flow(block: DbtCloudTransform) -> Any:
    return run_dbt_cloud_job(block)


def failure_of(block: DbtCloudTransform) -> DbtCloudError:
    with pytest.raises(DbtCloudError) as failed:
        cloud_flow(block)
    assert API_KEY not in str(failed.value)
    return failed.value


def test_a_successful_run_returns_typed_node_results_and_links_to_its_run_page(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    result = cloud_flow(block)
    run_id = dbt_cloud.last_run.id
    assert result.run_url == run_page(run_id)
    assert [(node.unique_id, node.status) for node in result.nodes] == [
        ("model.jaffle_shop.orders", NodeStatus.PASSED)
    ]
    assert result.artifact_links == [
        ("run_results.json", run_page(run_id)), ("manifest.json", run_page(run_id))
    ]  # fmt: skip
    assert dbt_cloud.triggers == 1


def test_the_blocks_run_triggers_its_job_once_and_returns_a_transform_result(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    result = block.run(DuckDBWarehouse())
    assert isinstance(result, TransformResult)
    assert (result.runner, result.counts["models"]) == ("dbt Cloud", 1)
    assert result.run_url == run_page(dbt_cloud.last_run.id)
    assert dbt_cloud.triggers == 1


def test_the_blocks_run_raises_with_the_failed_nodes_of_a_failed_job(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses, dbt_cloud.run_results = [3, 20], RESULTS
    with pytest.raises(DbtCloudError) as failed:
        block.run(DuckDBWarehouse())
    result = failed.value.result
    assert result.failures == [
        "test.jaffle_shop.unique_orders_order_id: Got 2 results, configured to fail if != 0"
    ]
    assert result.counts == {
        "models": 1, "tests_passed": 0, "tests_warned": 0, "tests_failed": 1, "errors": 0
    }  # fmt: skip
    assert failed.value.run_url == result.run_url == run_page(dbt_cloud.last_run.id)
    assert dbt_cloud.triggers == 1


def test_warned_tests_are_counted_apart_from_failed_ones_and_the_run_passes(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    warned = {**RESULTS["results"][1], "status": "warn", "message": "Got 2 results, warn if != 0"}
    dbt_cloud.run_results = {"results": [RESULTS["results"][0], warned]}
    result = cloud_flow(block)
    assert result.counts == {
        "models": 1, "tests_passed": 0, "tests_warned": 1, "tests_failed": 0, "errors": 0
    }  # fmt: skip
    assert result.failures == []
    assert dbt_cloud.triggers == 1


def test_a_successful_transform_publishes_results_run_link_and_artifact_links(
    environment: str, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    asyncio.run(transform(environment=environment))
    page = run_page(dbt_cloud.last_run.id)
    assert latest_artifact("dbt-cloud-run").data.endswith(f"({page})")  # Markdown link
    artifacts = latest_artifact("dbt-cloud-artifacts").data
    assert f"[manifest.json]({page})" in artifacts and "Artifacts** tab" in artifacts
    assert "/api/v2/" not in artifacts  # API links answer only with a bearer token
    assert "model.jaffle_shop.orders" in str(latest_artifact("dbt-cloud-results").data)
    assert dbt_cloud.triggers == 1


def test_a_job_without_artifacts_completes_with_a_note_instead_of_links(
    environment: str, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = None
    result = asyncio.run(transform(environment=environment))
    run_id = dbt_cloud.last_run.id
    assert (result.nodes, result.artifact_links) == ([], [])
    artifacts = latest_artifact("dbt-cloud-artifacts").data
    assert f"dbt Cloud run {run_id} saved no `run_results.json`" in artifacts
    assert "](" not in artifacts  # no links
    assert latest_artifact("dbt-cloud-run").data.endswith(f"({run_page(run_id)})")
    assert dbt_cloud.triggers == 1


@pytest.mark.parametrize("message", [None, ""])
def test_a_failed_job_publishes_its_results_and_alerts_once_naming_the_failure(
    environment: str,
    dbt_cloud: FakeDbtCloud,
    caplog: pytest.LogCaptureFixture,
    message: str | None,
) -> None:
    failing = {**RESULTS["results"][1], "unique_id": f"test.jaffle_shop.t_{uuid.uuid4().hex[:6]}"}
    dbt_cloud.statuses = [3, 20]
    dbt_cloud.run_results = {"results": [RESULTS["results"][0], failing, {
        "unique_id": "model.jaffle_shop.blank", "status": "error", "message": message,
    }]}  # fmt: skip
    with caplog.at_level("ERROR", logger="prefect.elt.alerts"):
        state = asyncio.run(transform(environment=environment, return_state=True))
    assert state.is_failed()
    run_id = dbt_cloud.last_run.id
    alerts = [r.getMessage() for r in caplog.records if r.name == "prefect.elt.alerts"]
    assert len(alerts) == 1
    for expected in ("dbt-cloud-job", failing["unique_id"], "model.jaffle_shop.blank",
                     f"/runs/{run_id}/"):  # fmt: skip
        assert expected in alerts[0]
    table = str(latest_artifact("dbt-cloud-results").data)
    assert table.index("model.jaffle_shop.blank") < table.index(failing["unique_id"])
    assert table.index(failing["unique_id"]) < table.index("model.jaffle_shop.orders")
    assert latest_artifact("dbt-cloud-run").data.endswith(f"({run_page(run_id)})")
    # The transform flow's one retry re-runs an errored job with a new run (one alert at the end).
    assert dbt_cloud.triggers == 2


@pytest.mark.parametrize(("status", "word"), [(20, "errored"), (30, "was cancelled")])
def test_a_failed_run_names_the_run_its_url_and_every_line_of_the_failing_nodes(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud, status: int, word: str
) -> None:
    multi_line = {**RESULTS["results"][1], "message": "Failure in test x\n  Got 2 results"}
    dbt_cloud.statuses, dbt_cloud.run_results = [3, status], {"results": [multi_line]}
    message = str(failure_of(block))
    run_id = dbt_cloud.last_run.id
    assert f"dbt Cloud run {run_id} of job {JOB} (account {ACCOUNT}) {word}" in message
    assert (
        "test.jaffle_shop.unique_orders_order_id: Failure in test x\n    Got 2 results" in message
    )
    assert run_page(run_id) in message and "Fix: " in message
    assert dbt_cloud.triggers == 1


def test_an_errored_run_without_run_results_names_its_failing_step_and_the_tail_of_its_log(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses, dbt_cloud.run_results = [3, 20], None
    dbt_cloud.status_message = "Job run failed: step 3 returned 2"
    dbt_cloud.run_steps = [
        {"name": "Clone git repository", "status_humanized": "Success", "logs": "cloned"},
        {"name": "Invoke dbt with `dbt build`", "status_humanized": "Error",
         "logs": "dbt=1.9\nCompilation Error in model orders\n  'amount' is undefined"},
    ]  # fmt: skip
    message = str(failure_of(block))
    assert "dbt Cloud says: Job run failed: step 3 returned 2" in message
    assert "step `Invoke dbt with `dbt build`` (Error)" in message
    assert "    Compilation Error in model orders\n      'amount' is undefined" in message
    assert "Clone git repository" not in message
    assert run_page(dbt_cloud.last_run.id) in message
    assert dbt_cloud.triggers == 1


@pytest.mark.parametrize("how", ["reset", "timeout", "502"])
def test_a_trigger_whose_answer_is_lost_after_the_run_was_made_makes_exactly_one_run(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud, how: str
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    dbt_cloud.lost_trigger_answers = [how]
    result = cloud_flow(block)
    [run] = dbt_cloud.runs.values()
    assert dbt_cloud.triggers == 1
    assert result.run_url == run_page(run.id)
    assert "prefect-flow-run=" in run.cause and f"job={JOB}" in run.cause


def test_a_trigger_failing_with_502_then_losing_its_answer_makes_exactly_one_run(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.hiccups = [502]  # answered before any run is made
    dbt_cloud.lost_trigger_answers = ["reset"]
    run = JobRuns(block).trigger()
    assert list(dbt_cloud.runs) == [run["id"]]
    assert dbt_cloud.triggers == 2  # sent again only after looking and finding no run


def test_a_retried_flow_run_starts_a_new_run_after_an_errored_one(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.scripts, dbt_cloud.run_results = [[3, 20], [3, 10]], {"results": []}

    @flow(retries=1, retry_delay_seconds=0)
    def retried(block: DbtCloudTransform) -> str:
        return run_dbt_cloud_job(block).run_url

    run_url = retried(block)
    errored, passed = sorted(dbt_cloud.runs)
    assert dbt_cloud.triggers == 2
    assert (dbt_cloud.runs[errored].status, dbt_cloud.runs[passed].status) == (20, 10)
    assert run_url == run_page(passed)
    assert dbt_cloud.runs[errored].cause == dbt_cloud.runs[passed].cause  # one flow run's key


def test_a_retried_flow_run_reruns_the_failed_steps_when_the_block_asks(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.scripts, dbt_cloud.run_results = [[3, 20], [3, 20], [3, 10]], {"results": []}
    rerunning = block.model_copy(update={"failed_steps_retries": 1})

    @flow(retries=1, retry_delay_seconds=0)
    def retried(block: DbtCloudTransform) -> str:
        return run_dbt_cloud_job(block).run_url

    assert retried(rerunning) == run_page(dbt_cloud.last_run.id)
    assert (dbt_cloud.triggers, dbt_cloud.count(RERUN)) == (1, 2)


def test_a_retried_flow_resumes_the_run_it_triggered_while_it_is_running(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses, dbt_cloud.run_results = [3, 3, 10], {"results": []}
    attempts: list[int] = []

    @flow(retries=1, retry_delay_seconds=0)
    def crashes_once_after_trigger(block: DbtCloudTransform) -> str:
        if not attempts:
            JobRuns(block).start_or_resume()
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("pod evicted while waiting for dbt Cloud")
        return run_dbt_cloud_job(block).run_url

    run_url = crashes_once_after_trigger(block)
    assert len(attempts) == 2
    assert dbt_cloud.triggers == 1
    assert run_url == run_page(dbt_cloud.last_run.id)


def test_a_finished_run_is_reused_by_a_retry_and_its_variable_deleted(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = {"results": []}
    names: list[str | None] = []

    @flow(retries=1, retry_delay_seconds=0)
    def fails_after_the_transform(block: DbtCloudTransform) -> str:
        run_url = run_dbt_cloud_job(block).run_url
        names.append(pipeline.dbt_cloud.run_variable_name(block))
        if len(names) == 1:
            raise RuntimeError("a later step failed")
        return run_url

    assert fails_after_the_transform(block) == run_page(dbt_cloud.last_run.id)
    assert dbt_cloud.triggers == 1
    assert names[0] and Variable.get(names[0], default=None) is None


def test_failed_steps_are_rerun_when_the_block_asks(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.scripts, dbt_cloud.run_results = [[3, 20], [3, 10]], {"results": []}
    retrying = block.model_copy(update={"failed_steps_retries": 1})
    result = cloud_flow(retrying)
    assert (dbt_cloud.triggers, dbt_cloud.count(RERUN)) == (1, 1)
    assert result.run_url == run_page(dbt_cloud.last_run.id)


def test_a_run_past_its_timeout_is_cancelled_and_named_with_its_link(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses = [3]
    slow = block.model_copy(update={"timeout_seconds": 60})
    slow.timeout_seconds = 2  # below the block's minimum on purpose: keep the test short
    failed = failure_of(slow)
    run = dbt_cloud.last_run
    assert f"dbt Cloud run {run.id} of job {JOB} (account {ACCOUNT}) did not finish within 2 s" in (
        str(failed)
    )
    assert "cancelled it in dbt Cloud" in str(failed) and run_page(run.id) in str(failed)
    assert failed.run_url == run_page(run.id)
    assert (run.status, dbt_cloud.count(f"{CANCEL}{run.id}/cancel/")) == (30, 1)
    assert dbt_cloud.triggers == 1


def test_a_run_past_its_timeout_is_left_running_when_the_block_says_so(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses = [3]
    slow = block.model_copy(update={"timeout_seconds": 60, "cancel_on_timeout": False})
    slow.timeout_seconds = 2
    assert "left running in dbt Cloud" in str(failure_of(slow))
    assert (dbt_cloud.last_run.status, dbt_cloud.count(CANCEL)) == (3, 0)
    assert dbt_cloud.triggers == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("malformed_polls", "answered GET /api/v2/accounts/4242/runs/{run}/ with HTTP 200 but "
                            "not JSON: '<html>502 Bad Gateway</html>'"),
        ("hung_polls", "gave no answer to GET /api/v2/accounts/4242/runs/{run}/ within 5 s "
                       "(ReadTimeout)"),
    ],
)  # fmt: skip
def test_a_fault_while_polling_names_the_run_its_url_and_what_happened(
    block: DbtCloudTransform,
    dbt_cloud: FakeDbtCloud,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    expected: str,
) -> None:
    monkeypatch.setattr(pipeline.dbt_cloud, "ATTEMPTS", 1)  # one hung request is enough
    setattr(dbt_cloud, fault, True)
    message = str(failure_of(block))
    run_id = dbt_cloud.last_run.id
    assert f"dbt Cloud run {run_id} of job {JOB} (account {ACCOUNT}): " in message
    assert expected.format(run=run_id) in message
    assert run_page(run_id) in message and "Fix: " in message
    assert dbt_cloud.triggers == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_api_key_fails_at_once_naming_the_account(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud, status: int
) -> None:
    dbt_cloud.auth_status = status
    with pytest.raises(DbtCloudAuthError) as refused:
        cloud_flow(block)
    message = str(refused.value)
    assert f"account {ACCOUNT}" in message and "API key" in message
    assert API_KEY not in message
    assert len(dbt_cloud.calls) == 1
    assert dbt_cloud.triggers == 0


def test_a_key_refused_while_polling_names_the_run_and_its_url(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.refused_polls = 403
    with pytest.raises(DbtCloudAuthError) as refused:
        cloud_flow(block)
    run_id = dbt_cloud.last_run.id
    message = str(refused.value)
    assert f"dbt Cloud run {run_id} of job {JOB}" in message and "HTTP 403" in message
    assert "API key" in message and run_page(run_id) in message
    assert refused.value.run_url == run_page(run_id)
    assert dbt_cloud.triggers == 1


@pytest.mark.parametrize("hiccup", [429, 500, 503])
def test_transient_answers_are_retried_with_backoff(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud, hiccup: int
) -> None:
    dbt_cloud.run_results = {"results": []}
    dbt_cloud.hiccups = [hiccup, hiccup]
    assert cloud_flow(block).run_url == run_page(dbt_cloud.last_run.id)
    assert len(dbt_cloud.runs) == dbt_cloud.triggers == 1


def test_a_run_not_found_just_after_its_trigger_is_polled_again(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    runs = JobRuns(block)
    run = runs.trigger()
    dbt_cloud.hiccups = [404, 404]
    assert runs.wait(run)["status"] == 10
    assert dbt_cloud.triggers == 1


def test_api_calls_stay_within_duration_over_interval_plus_five(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses, dbt_cloud.run_results = [1, 2, 3, 3, 10], {"results": []}
    started = time.monotonic()
    cloud_flow(block)
    duration = time.monotonic() - started
    assert len(dbt_cloud.calls) <= duration / block.poll_interval_seconds + 5
    assert dbt_cloud.triggers == 1


def test_the_transform_flow_runs_dbt_cloud_when_the_environment_says_so(
    environment: str, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    result = asyncio.run(transform(environment=environment))
    assert result.runner == "dbt Cloud"
    assert result.counts["models"] == 1
    assert result.run_url.startswith("https://")
    assert dbt_cloud.triggers == 1


def test_the_task_logs_the_trigger_each_retry_with_its_reason_and_the_final_status(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud, caplog: pytest.LogCaptureFixture
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    dbt_cloud.lost_trigger_answers = ["502"]
    with caplog.at_level("INFO", logger="prefect.task_runs"):
        cloud_flow(block)
    run_id = dbt_cloud.last_run.id
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "prefect.task_runs")
    assert f"jobs/{JOB}/run/ with HTTP 502" in logged
    assert "the request may have created the run: look for it before sending again" in logged
    assert f"dbt Cloud run {run_id} of job {JOB} (account {ACCOUNT}): adopted the run" in logged
    assert f"Triggered dbt Cloud run {run_id} of job {JOB}" in logged
    assert f"dbt Cloud run {run_id} of job {JOB} (account {ACCOUNT}) succeeded in" in logged
    assert "1 models built" in logged and run_page(run_id) in logged
    assert API_KEY not in logged
    assert dbt_cloud.triggers == 1
