"""Run a dbt Cloud job through prefect-dbt's client: trigger once per flow run, wait, report."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import httpx
from prefect import runtime, task
from prefect.cache_policies import NONE
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect.variables import Variable
from prefect_dbt.cloud.clients import DbtCloudAdministrativeClient
from prefect_dbt.cloud.models import TriggerJobRunOptions
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from pipeline.failures import note_failed_task
from pipeline.transform_result import TransformError, TransformResult, nodes_from_run_results

if TYPE_CHECKING:
    # Types only: the blocks import this machinery when they run, not the other way round.
    from blocks import DbtCloudTransform

RUNNER = "dbt Cloud"
SUCCESS, ERROR, CANCELLED = 10, 20, 30
TERMINAL = {SUCCESS: "succeeded", ERROR: "errored", CANCELLED: "was cancelled"}
BACKOFF_SECONDS = 2.0  # first retry wait; doubles up to BACKOFF_MAX_SECONDS
BACKOFF_MAX_SECONDS = 60.0
ATTEMPTS = 6

ApiCall = Callable[[DbtCloudAdministrativeClient], Coroutine[Any, Any, httpx.Response]]


class DbtCloudError(TransformError):
    """A dbt Cloud run failed, was cancelled or timed out; its result has the URL and nodes."""


class DbtCloudAuthError(DbtCloudError):
    """dbt Cloud refused the API key (401/403): retrying can't help."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        # 404 only where a just-triggered run may not be visible yet (see `api`).
        return status in (404, 429) or status >= 500
    return False


def api(block: DbtCloudTransform, call: ApiCall, *, retry_not_found: bool = False) -> Any:
    """One API call with backoff on 429/5xx (and 404 when asked); 401/403 fail at once."""

    def should_retry(exc: BaseException) -> bool:
        not_found = isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 404
        return _retryable(exc) and (retry_not_found or not not_found)

    retrying = Retrying(
        stop=stop_after_attempt(ATTEMPTS),
        wait=wait_exponential(multiplier=BACKOFF_SECONDS, max=BACKOFF_MAX_SECONDS),
        retry=retry_if_exception(should_retry),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            try:
                client = block.credentials.get_administrative_client()
                response = run_coro_as_sync(call(client))
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code in (401, 403):
                    raise DbtCloudAuthError(
                        f"dbt Cloud refused the API key for account "
                        f"{block.credentials.account_id} ({exc.response.status_code}): check the "
                        "API key (a service token allowed to run jobs) and the account ID in "
                        "the dbt-cloud-transform block's dbt Cloud credentials",
                        TransformResult(RUNNER),
                    ) from None
                raise
    assert response is not None
    return response.json()


def run_variable_name(block: DbtCloudTransform) -> str | None:
    """Where this flow run keeps the id of the dbt Cloud run it triggered (None outside a run)."""
    flow_run_id = runtime.flow_run.id
    return f"dbt-cloud-run-{flow_run_id}-{block.job_id}" if flow_run_id else None


def trigger_or_resume(block: DbtCloudTransform, force_new_run: bool = False) -> int:
    """The run this flow run already triggered, or a new one; a retry never triggers twice."""
    variable = run_variable_name(block)
    if variable and not force_new_run:
        existing = Variable.get(variable, default=None)
        if existing:
            return int(existing)
    cause = f"Prefect flow run {runtime.flow_run.name or 'outside a flow'}"
    data = api(
        block,
        lambda client: client.trigger_job_run(block.job_id, TriggerJobRunOptions(cause=cause)),
    )["data"]
    if variable:
        Variable.set(variable, str(data["id"]), overwrite=True)
    return int(data["id"])


def wait_for_run(block: DbtCloudTransform, run_id: int) -> dict[str, Any]:
    """Poll every `poll_interval_seconds` until the run ends; fail past `timeout_seconds`."""
    deadline = time.monotonic() + block.timeout_seconds
    while True:
        run: dict[str, Any] = api(
            block, lambda client: client.get_run(run_id), retry_not_found=True
        )["data"]
        if run["status"] in TERMINAL:
            return run
        if time.monotonic() + block.poll_interval_seconds > deadline:
            url = block.run_url(run_id, run.get("project_id"))
            raise DbtCloudError(
                f"dbt Cloud run {run_id} did not finish within {block.timeout_seconds} s "
                f"(still {run.get('status_humanized', run['status'])}); raise the block's wait "
                f"timeout if the job needs longer: {url}",
                TransformResult(RUNNER, run_url=url),
            )
        time.sleep(block.poll_interval_seconds)


def fetch_run_results(block: DbtCloudTransform, run_id: int) -> dict[str, Any]:
    """run_results.json of the run's last step, or {} when the run produced none."""
    try:
        results: dict[str, Any] = api(
            block, lambda client: client.get_run_artifact(run_id, "run_results.json")
        )
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return {}
        raise
    return results


def retry_failed_steps(block: DbtCloudTransform, run_id: int) -> int:
    """Ask dbt Cloud to re-run only the failed steps of `run_id`; return the new run's id."""
    data = api(block, lambda client: client.call_endpoint("POST", f"/runs/{run_id}/retry/"))
    return int(data["data"]["id"])


def artifact_links(block: DbtCloudTransform, run_id: int) -> list[tuple[str, str]]:
    """Links to the run artifacts the block asks to publish."""
    credentials = block.credentials
    base = (
        f"https://{credentials.domain}/api/v2/accounts/{credentials.account_id}"
        f"/runs/{run_id}/artifacts"
    )
    return [(name, f"{base}/{name}") for name in block.artifacts]


@task(name="dbt-cloud-job", cache_policy=NONE, on_failure=[note_failed_task])
def run_dbt_cloud_job(block: DbtCloudTransform, force_new_run: bool = False) -> TransformResult:
    """Trigger (or resume) the block's job and wait for it; raise DbtCloudError unless it passed."""
    started = time.perf_counter()
    run_id = trigger_or_resume(block, force_new_run)
    run = wait_for_run(block, run_id)
    for _ in range(block.failed_steps_retries):
        if run["status"] != ERROR:
            break
        run_id = retry_failed_steps(block, run_id)
        run = wait_for_run(block, run_id)
    result = TransformResult(
        RUNNER,
        nodes_from_run_results(fetch_run_results(block, run_id)),
        seconds=time.perf_counter() - started,
        run_url=block.run_url(run_id, run.get("project_id")),
        artifact_links=artifact_links(block, run_id),
    )
    if run["status"] != SUCCESS:
        failures = result.failures or failed_steps(run)
        raise DbtCloudError(
            f"dbt Cloud run {run_id} {TERMINAL[run['status']]}: "
            + ("; ".join(failures) if failures else "no failing node reported")
            + f". See {result.run_url}",
            result,
        )
    return result


def failed_steps(run: dict[str, Any]) -> list[str]:
    """Names of the run's failed steps, when run_results.json can't say which nodes failed."""
    return [
        str(step.get("name", "step"))
        for step in run.get("run_steps") or []
        if step.get("status_humanized") in {"Error", "Cancelled"}
    ]
