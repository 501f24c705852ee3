"""dbt Cloud jobs through prefect-dbt's client, against a local HTTPS dbt Cloud stand-in."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect_dbt.cloud import DbtCloudCredentials
from pytest_httpserver import HTTPServer

import pipeline.dbt_cloud
from blocks import DbtCloudTransform, DuckDBWarehouse
from flows.transform import transform
from pipeline.dbt_cloud import DbtCloudAuthError, DbtCloudError, run_dbt_cloud_job
from pipeline.transform_result import NodeStatus, TransformResult
from tests.support.artifacts import latest_artifact
from tests.support.dbt_cloud import ACCOUNT, JOB, PROJECT, FakeDbtCloud
from tests.support.environments import save_environment

pytestmark = pytest.mark.usefixtures("prefect_api")
API_KEY = "dbtc_never_in_messages"
RESULTS = {
    "results": [
        {"unique_id": "model.jaffle_shop.orders", "status": "success", "execution_time": 1.2},
        {"unique_id": "test.jaffle_shop.unique_orders_order_id", "status": "fail",
         "execution_time": 0.3, "message": "Got 2 results, configured to fail if != 0"},
    ]
}  # fmt: skip


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


def test_a_successful_run_returns_typed_node_results_and_its_run_url(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    result = cloud_flow(block)
    run_id = dbt_cloud.next_run_id
    assert result.run_url.endswith(f"/deploy/{ACCOUNT}/projects/{PROJECT}/runs/{run_id}")
    assert [(node.unique_id, node.status) for node in result.nodes] == [
        ("model.jaffle_shop.orders", NodeStatus.PASSED)
    ]
    assert [name for name, _ in result.artifact_links] == ["run_results.json", "manifest.json"]
    assert result.artifact_links[0][1].endswith(f"/runs/{run_id}/artifacts/run_results.json")


def test_the_blocks_run_triggers_its_job_and_returns_a_transform_result(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    result = block.run(DuckDBWarehouse())
    assert isinstance(result, TransformResult)
    assert (result.runner, result.counts["models"]) == ("dbt Cloud", 1)
    assert result.run_url.endswith(f"/runs/{dbt_cloud.next_run_id}")
    assert dbt_cloud.count(f"POST /api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/") == 1


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
    assert failed.value.run_url == result.run_url != ""


def test_a_successful_transform_publishes_results_run_link_and_artifact_links(
    environment: str, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    transform(environment=environment)
    run_id = dbt_cloud.next_run_id
    assert latest_artifact("dbt-cloud-run").data.endswith(f"/runs/{run_id})")  # Markdown link
    assert f"/runs/{run_id}/artifacts/manifest.json" in latest_artifact("dbt-cloud-artifacts").data
    assert "model.jaffle_shop.orders" in str(latest_artifact("dbt-cloud-results").data)


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
        state = transform(environment=environment, return_state=True)
    assert state.is_failed()
    run_id = dbt_cloud.next_run_id
    alerts = [r.getMessage() for r in caplog.records if r.name == "prefect.elt.alerts"]
    assert len(alerts) == 1
    for expected in ("dbt-cloud-job", failing["unique_id"], "model.jaffle_shop.blank",
                     f"/runs/{run_id}"):  # fmt: skip
        assert expected in alerts[0]
    table = str(latest_artifact("dbt-cloud-results").data)
    assert table.index("model.jaffle_shop.blank") < table.index(failing["unique_id"])
    assert table.index(failing["unique_id"]) < table.index("model.jaffle_shop.orders")
    assert latest_artifact("dbt-cloud-run").data.endswith(f"/runs/{run_id})")  # Markdown link


@pytest.mark.parametrize(("status", "word"), [(20, "errored"), (30, "was cancelled")])
def test_a_failed_run_names_the_run_url_and_the_failing_tests(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud, status: int, word: str
) -> None:
    dbt_cloud.statuses, dbt_cloud.run_results = [3, status], RESULTS
    with pytest.raises(DbtCloudError) as failed:
        cloud_flow(block)
    message = str(failed.value)
    assert word in message
    assert "test.jaffle_shop.unique_orders_order_id" in message
    assert f"/deploy/{ACCOUNT}/projects/{PROJECT}/runs/" in message
    assert API_KEY not in message


def test_a_run_past_its_timeout_fails_with_the_run_url(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses = [3]
    slow = block.model_copy(update={"timeout_seconds": 60})
    slow.timeout_seconds = 2  # below the block's minimum on purpose: keep the test short
    with pytest.raises(DbtCloudError, match=r"did not finish within 2 s.*runs/"):
        cloud_flow(slow)


@pytest.mark.parametrize("hiccup", [404, 429, 500, 503])
def test_transient_answers_are_retried_with_backoff(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud, hiccup: int
) -> None:
    dbt_cloud.run_results = {"results": []}
    dbt_cloud.hiccups = [hiccup, hiccup]
    if hiccup == 404:  # a 404 is retried only after the trigger, when polling
        dbt_cloud.hiccups = []
        run_id = pipeline.dbt_cloud.trigger_or_resume(block, force_new_run=True)
        dbt_cloud.hiccups = [404, 404]
        assert pipeline.dbt_cloud.wait_for_run(block, run_id)["status"] == 10
    else:
        assert cloud_flow(block).run_url.endswith(f"/runs/{dbt_cloud.next_run_id}")
    assert dbt_cloud.count("GET /api") + dbt_cloud.count("POST /api") >= 3


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


def test_a_retried_flow_resumes_the_run_it_triggered(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses, dbt_cloud.run_results = [3, 3, 10], {"results": []}
    attempts: list[int] = []

    @flow(retries=1)
    def crashes_once_after_trigger(block: DbtCloudTransform) -> str:
        pipeline.dbt_cloud.trigger_or_resume(block)
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("pod evicted while waiting for dbt Cloud")
        return run_dbt_cloud_job(block).run_url

    run_url = crashes_once_after_trigger(block)
    assert len(attempts) == 2
    assert dbt_cloud.count("POST /api/v2/accounts/4242/jobs/77/run/") == 1
    assert run_url.endswith(f"/runs/{dbt_cloud.next_run_id}")


def test_failed_steps_are_rerun_when_the_block_asks(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses, dbt_cloud.run_results = [3, 20], {"results": []}
    retrying = block.model_copy(update={"failed_steps_retries": 1})
    result = cloud_flow(retrying)
    assert dbt_cloud.count("POST /api/v2/accounts/4242/runs/") == 1  # the /retry/ call
    assert result.run_url.endswith(f"/runs/{dbt_cloud.next_run_id}")


def test_api_calls_stay_within_duration_over_interval_plus_five(
    block: DbtCloudTransform, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.statuses, dbt_cloud.run_results = [1, 2, 3, 3, 10], {"results": []}
    started = time.monotonic()
    cloud_flow(block)
    duration = time.monotonic() - started
    assert len(dbt_cloud.calls) <= duration / block.poll_interval_seconds + 5


def test_the_transform_flow_runs_dbt_cloud_when_the_environment_says_so(
    environment: str, dbt_cloud: FakeDbtCloud
) -> None:
    dbt_cloud.run_results = {"results": RESULTS["results"][:1]}
    result = transform(environment=environment)
    assert result.runner == "dbt Cloud"
    assert result.counts["models"] == 1
    assert result.run_url.startswith("https://")
