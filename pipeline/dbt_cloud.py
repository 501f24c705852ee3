"""Run a dbt Cloud job through prefect-dbt's client: one run per flow run, waited for, reported."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from prefect import runtime, task
from prefect.cache_policies import NONE
from prefect.exceptions import MissingContextError
from prefect.logging import get_logger, get_run_logger
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect.variables import Variable
from prefect_dbt.cloud.clients import DbtCloudAdministrativeClient
from prefect_dbt.cloud.models import TriggerJobRunOptions
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from pipeline.dbt_cloud_plan import (
    CANCELLED,
    ENDED,
    ERROR,
    SUCCESS,
    NextStep,
    RunRef,
    TriggerFault,
    failure_details,
    is_transient,
    next_step,
    read_json,
    run_data,
    trigger_fault,
    what_happened,
    what_to_do,
)
from pipeline.failures import note_failed_task
from pipeline.transform_result import (
    NodeResult,
    TransformError,
    TransformResult,
    nodes_from_run_results,
)

if TYPE_CHECKING:
    # Types only: the blocks import this machinery when they run, not the other way round.
    from blocks import DbtCloudTransform

RUNNER = "dbt Cloud"
BACKOFF_SECONDS = 2.0  # first retry wait; doubles up to BACKOFF_MAX_SECONDS
BACKOFF_MAX_SECONDS = 60.0
ATTEMPTS = 6
RECENT_RUNS = 100  # how far back in the job's run history a lost trigger is looked for
RUN_RESULTS = "run_results.json"

ApiCall = Callable[[DbtCloudAdministrativeClient], Coroutine[Any, Any, httpx.Response]]
Method = TypeVar("Method", bound=Callable[..., Any])


class DbtCloudError(TransformError):
    """A dbt Cloud run failed, was cancelled or timed out; its result has the URL and nodes."""


class DbtCloudAuthError(DbtCloudError):
    """dbt Cloud refused the API key (401/403): retrying can't help."""


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The task run's logger (shown in the Prefect UI), or a module logger outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("dbt_cloud")


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1`."""
    return min(BACKOFF_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS)


def run_variable_name(block: DbtCloudTransform) -> str | None:
    """Where this flow run keeps the id of its dbt Cloud run (None outside a flow run)."""
    flow_run_id = runtime.flow_run.id
    return f"dbt-cloud-run-{flow_run_id}-{block.job_id}" if flow_run_id else None


def naming_the_run(doing: str) -> Callable[[Method], Method]:
    """Turn any failure of a JobRuns step into a DbtCloudError naming the run, cause and fix."""

    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        def wrapper(self: JobRuns, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except DbtCloudError:
                raise
            except Exception as exc:
                raise self.failure(doing, exc) from exc

        return wrapper  # type: ignore[return-value]

    return decorate


class JobRuns:
    """The block's job as one flow run sees it: at most one live run, found again after faults."""

    def __init__(self, block: DbtCloudTransform) -> None:
        self.block = block
        self.log = run_logger()
        self.variable = run_variable_name(block)
        # The key goes into the trigger's `cause`, so a run whose answer was lost can be found.
        owner = runtime.flow_run.id or f"no-flow-run-{uuid.uuid4().hex[:12]}"
        self.key = f"prefect-flow-run={owner} job={block.job_id}"
        self.ref = RunRef(block.credentials.account_id, block.job_id)

    # --- HTTP ---------------------------------------------------------------------------------

    def send(self, call: ApiCall) -> httpx.Response:
        """One request with prefect-dbt's client; no retry."""

        async def request() -> httpx.Response:
            async with self.block.credentials.get_administrative_client() as client:
                return await call(client)

        return run_coro_as_sync(request())

    def call(self, call: ApiCall, doing: str, *, not_found_is_transient: bool = False) -> Any:
        """A request that may safely be repeated, with backoff on connection faults, 429 and 5xx."""

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0
            self.log.warning(
                "%s: %s while %s; retry %d of %d in %.1f s",
                self.ref.name, what_happened(exc) if exc else "no answer", doing,
                state.attempt_number, ATTEMPTS - 1, wait,
            )  # fmt: skip

        retrying = Retrying(
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_exponential(multiplier=BACKOFF_SECONDS, max=BACKOFF_MAX_SECONDS),
            retry=retry_if_exception(lambda exc: is_transient(exc, not_found_is_transient)),
            before_sleep=log_retry,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return read_json(self.send(call))
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def failure(self, doing: str, exc: BaseException) -> DbtCloudError:
        """A DbtCloudError naming the run, what happened while `doing`, and the fix."""
        refused = isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (401, 403)
        kind = DbtCloudAuthError if refused else DbtCloudError
        message = f"{self.ref.name}: {doing} failed: {what_happened(exc)}. Fix: {what_to_do(exc)}."
        return kind(f"{message} {self.ref.link}", TransformResult(RUNNER, run_url=self.ref.url))

    # --- Runs ---------------------------------------------------------------------------------

    def know(self, run: Mapping[str, Any]) -> None:
        """Name this run in every later message and record it for a retry of this flow run."""
        run_id = int(run["id"])
        url = str(run.get("href") or self.block.run_url(run_id, run.get("project_id")))
        self.ref = RunRef(self.ref.account_id, self.ref.job_id, run_id, url)
        if self.variable:
            Variable.set(self.variable, str(run_id), overwrite=True)

    def forget(self) -> None:
        """The run is finished and reported: drop its Variable."""
        if self.variable:
            Variable.unset(self.variable)

    @naming_the_run("reading the run")
    def get(self, run_id: int, with_steps: bool = False) -> dict[str, Any]:
        """The run's payload (with its steps and their logs when asked)."""
        include: Any = ["run_steps"] if with_steps else None
        payload = self.call(
            lambda client: client.get_run(run_id, include_related=include),
            f"reading run {run_id}",
            not_found_is_transient=True,  # a just-triggered run may not be visible yet
        )
        return run_data(payload, f"GET /runs/{run_id}/")

    @naming_the_run("looking for this flow run's run in the job's history")
    def find(self, key: str | None, newer_than: int = 0) -> dict[str, Any] | None:
        """The newest run carrying `key` (or, keyless, the first run) after run `newer_than`."""
        params = {
            "job_definition_id": self.block.job_id,
            "order_by": "-id",
            "limit": RECENT_RUNS,
            "include_related": ["trigger"],
        }
        payload = self.call(
            lambda client: client.call_endpoint("GET", "/runs/", params=params),
            "listing the job's recent runs",
        )
        runs = [
            run
            for run in payload.get("data") or []
            if int(run.get("id", 0)) > newer_than
            and (key is None or key in str((run.get("trigger") or {}).get("cause", "")))
        ]
        if not runs:
            return None
        pick = max if key else min  # keyless: the first run after ours is the rerun we asked for
        return dict(pick(runs, key=lambda run: int(run["id"])))

    @naming_the_run("triggering a run")
    def trigger(self, newer_than: int = 0) -> dict[str, Any]:
        """A new run carrying this flow run's key; never a second one when an answer is lost."""
        name = runtime.flow_run.name or "outside a flow run"
        options = TriggerJobRunOptions(cause=f"Prefect flow run {name} ({self.key})")
        job = self.block.job_id
        return self.start_once(
            lambda client: client.trigger_job_run(job, options), f"POST /jobs/{job}/run/",
            self.key, newer_than,
        )  # fmt: skip

    @naming_the_run("re-running the failed steps")
    def rerun_failed_steps(self, errored_run_id: int) -> dict[str, Any]:
        """dbt Cloud's rerun from failure of the job's errored run; the new run's payload."""
        path = f"/jobs/{self.block.job_id}/rerun/"
        # The rerun endpoint takes no cause: a lost answer is the first run after the errored one.
        return self.start_once(
            lambda client: client.call_endpoint("POST", path), f"POST {path}", None, errored_run_id
        )

    def start_once(self, call: ApiCall, request: str, key: str | None, newer_than: int) -> Any:
        """Send a run-starting request; if its answer is lost, adopt the run it made, if any."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                run = run_data(read_json(self.send(call)), request)
            except Exception as exc:
                fault = trigger_fault(exc)
                if fault is TriggerFault.REFUSED:
                    raise
                wait = backoff(attempt)
                self.log.warning(
                    "%s: %s; the request %s. Attempt %d of %d; next step in %.1f s",
                    self.ref.name, what_happened(exc), fault.value, attempt, ATTEMPTS, wait,
                )  # fmt: skip
                time.sleep(wait)
                # Looked for after the last attempt too: a run made then is adopted, not orphaned.
                if fault is TriggerFault.MAYBE_CREATED and (found := self.find(key, newer_than)):
                    self.know(found)
                    self.log.warning(
                        "%s: adopted the run that %s created: it was made before the answer "
                        "was lost, so no second run is started. %s",
                        self.ref.name, request, self.ref.link,
                    )  # fmt: skip
                    return found
                if attempt == ATTEMPTS:
                    raise
                continue
            self.know(run)  # outside the try: a failure to record it must not send it again
            return run
        raise AssertionError("unreachable: the last attempt returns or re-raises")

    def start_or_resume(self) -> dict[str, Any]:
        """The run this flow run already has, if still useful; else a new one (or a rerun)."""
        stored = Variable.get(self.variable, default=None) if self.variable else None
        previous = self.get(int(stored)) if stored else self.find(self.key)
        status = previous.get("status") if previous else None
        step = next_step(status, self.block.failed_steps_retries > 0)
        if previous:
            self.know(previous)
            said = ENDED.get(status) or f"is {previous.get('status_humanized') or 'running'}"
            self.log.info("%s %s: this flow run will %s", self.ref.name, said, step.value)
        if step in (NextStep.AWAIT, NextStep.REUSE):
            assert previous is not None
            return previous
        if step is NextStep.RERUN_FAILED_STEPS:
            assert previous is not None
            run = self.rerun_failed_steps(int(previous["id"]))
            self.log.info("Re-running the failed steps as %s. %s", self.ref.name, self.ref.link)
        else:
            run = self.trigger(newer_than=int(previous["id"]) if previous else 0)
            self.log.info("Triggered %s. %s", self.ref.name, self.ref.link)
        return run

    @naming_the_run("waiting for the run")
    def wait(self, run: dict[str, Any]) -> dict[str, Any]:
        """Poll until the run ends; past `timeout_seconds`, cancel it (if the block says so)."""
        run_id = int(run["id"])
        deadline = time.monotonic() + self.block.timeout_seconds
        while run.get("status") not in ENDED:
            if time.monotonic() + self.block.poll_interval_seconds > deadline:
                raise self.timed_out(run)
            time.sleep(self.block.poll_interval_seconds)
            run = self.get(run_id)
        if run["status"] != SUCCESS:  # read again with the steps and their logs, for the message
            run = self.get(run_id, with_steps=True)
        return run

    def timed_out(self, run: Mapping[str, Any]) -> DbtCloudError:
        """The timeout failure; the run is cancelled first when the block says so."""
        still = run.get("status_humanized") or run.get("status")
        what = f"did not finish within {self.block.timeout_seconds} s (still {still})"
        if not self.block.cancel_on_timeout:
            done = "it is left running in dbt Cloud (the block's cancel on timeout is off)"
        else:
            try:
                path = f"/runs/{run['id']}/cancel/"
                self.call(lambda client: client.call_endpoint("POST", path), "cancelling the run")
                done = "cancelled it in dbt Cloud"
            except Exception as exc:
                done = f"cancelling it failed ({what_happened(exc)}): cancel it in dbt Cloud"
        self.log.error("%s %s; %s", self.ref.name, what, done)
        return DbtCloudError(
            f"{self.ref.name} {what}; {done}. Fix: raise the block's wait timeout "
            f"(timeout_seconds) above the job's longest run. {self.ref.link}",
            TransformResult(RUNNER, run_url=self.ref.url),
        )

    @naming_the_run("reading the run's results")
    def results(self, run_id: int) -> tuple[list[NodeResult], list[str]]:
        """The run's nodes from run_results.json, and the artifacts it saved among the block's."""
        listed = self.call(
            lambda client: client.list_run_artifacts(run_id), "listing the run's artifacts"
        )
        saved = {str(path) for path in listed.get("data") or []}
        if RUN_RESULTS not in saved:
            return [], []
        run_results = self.call(
            lambda client: client.get_run_artifact(run_id, RUN_RESULTS), f"reading {RUN_RESULTS}"
        )
        return nodes_from_run_results(run_results), [a for a in self.block.artifacts if a in saved]


def artifact_notes(saved: list[str], run_url: str, run_id: int) -> list[str]:
    """What the artifacts markdown says above its links, or instead of them."""
    if not saved:
        return [
            f"dbt Cloud run {run_id} saved no `{RUN_RESULTS}` (the job does not generate "
            "artifacts, or it failed before dbt ran): no node results to show. "
            f"See the run's logs: {run_url}"
        ]
    return ["Open these in the **Artifacts** tab of the run page (signed in to dbt Cloud):"]


@task(name="dbt-cloud-job", cache_policy=NONE, on_failure=[note_failed_task])
def run_dbt_cloud_job(block: DbtCloudTransform) -> TransformResult:
    """Trigger (or resume) the block's job and wait for it; raise DbtCloudError unless it passed."""
    started = time.perf_counter()
    runs = JobRuns(block)
    run = runs.wait(runs.start_or_resume())
    for retry in range(1, block.failed_steps_retries + 1):
        if run["status"] != ERROR:
            break
        errored = runs.ref.name
        run = runs.rerun_failed_steps(int(run["id"]))
        runs.log.warning(
            "%s errored: re-running its failed steps as run %s (retry %d of %d). %s",
            errored, run["id"], retry, block.failed_steps_retries, runs.ref.link,
        )  # fmt: skip
        run = runs.wait(run)
    run_id = int(run["id"])
    nodes, saved = runs.results(run_id)
    result = TransformResult(
        RUNNER,
        nodes,
        seconds=time.perf_counter() - started,
        run_url=runs.ref.url,
        artifact_links=[(name, runs.ref.url) for name in saved],
        notes=artifact_notes(saved, runs.ref.url, run_id),
    )
    counts = result.counts
    runs.log.info(
        "%s %s in %.0f s: %d models built; tests %d passed, %d warned, %d failed. %s",
        runs.ref.name, ENDED[run["status"]], result.seconds, counts["models"],
        counts["tests_passed"], counts["tests_warned"], counts["tests_failed"], runs.ref.link,
    )  # fmt: skip
    runs.forget()
    if run["status"] != SUCCESS:
        again = "re-runs its failed steps" if block.failed_steps_retries else "starts a new run"
        fix = (
            "find who or what cancelled it in dbt Cloud, then retry the flow run"
            if run["status"] == CANCELLED
            else f"fix what failed, then retry the flow run (it {again} in dbt Cloud)"
        )
        headline = f"{runs.ref.name} {ENDED[run['status']]}."
        advice = f"Fix: {fix}. {runs.ref.link}"
        raise DbtCloudError("\n".join([headline, *failure_details(run, nodes), advice]), result)
    return result
