"""Failures alert once, as valid Block Kit, through a real HTTP receiver standing in for Slack."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, task
from prefect.cache_policies import NONE
from pytest_httpserver import HTTPServer
from slack_sdk.models.blocks import Block as SlackBlock
from werkzeug import Request, Response

import blocks.alerts
from blocks import ConsoleAlerts, DuckDBWarehouse, ELTEnvironment
from demo.data import generate_jaffle_shop
from flows.extract_load import extract_load
from pipeline.alerting import FLOW_HOOKS
from pipeline.failures import note_failed_task
from pipeline.loading import TableLoad
from pipeline.sources import UntrustedRow
from tests.support.environments import link, save_document_data, save_environment, slack_alerts

pytestmark = pytest.mark.usefixtures("prefect_api")
SECRET_IN_URL = "T0/B0/not-to-be-seen"


@pytest.fixture
def slack(httpserver: HTTPServer) -> Iterator[list[dict[str, Any]]]:
    """Messages the fake Slack webhook received."""
    received: list[dict[str, Any]] = []

    def handle(request: Request) -> Response:
        received.append(json.loads(request.data))
        return Response("ok")

    httpserver.expect_request(f"/services/{SECRET_IN_URL}").respond_with_handler(handle)
    yield received


def slack_environment(tmp_path: Path, webhook_url: str) -> str:
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    save_environment(
        name,
        warehouse=DuckDBWarehouse(path=str(tmp_path / "w.duckdb")),
        alerts=slack_alerts(
            webhook_url, environment_label="staging", mention="<!here>",
            prefect_ui_url="http://127.0.0.1:4200",
        ),
    )  # fmt: skip
    return name


@pytest.fixture
def environment(tmp_path: Path, httpserver: HTTPServer) -> str:
    return slack_environment(tmp_path, httpserver.url_for(f"/services/{SECRET_IN_URL}"))


@task(cache_policy=NONE, on_failure=[note_failed_task])
def flaky_step() -> None:
    raise ValueError("the upstream API answered 503")


@flow(name="alert-on-task", **FLOW_HOOKS)
def flow_with_failing_task(environment: str) -> None:
    flaky_step()


@flow(name="alert-on-flow", **FLOW_HOOKS)
def failing_flow(environment: str) -> None:
    raise RuntimeError("nothing to transform: raw schema is empty")


@flow(name="alert-on-timeout", timeout_seconds=1, **FLOW_HOOKS)
def slow_flow(environment: str) -> None:
    time.sleep(5)


def load_environment_documents(name: str) -> ELTEnvironment:
    environment: ELTEnvironment = ELTEnvironment.load(name, _sync=True)  # type: ignore[call-arg,assignment]
    return environment


def texts(message: dict[str, Any]) -> str:
    return json.dumps(message)


def assert_valid_block_kit(message: dict[str, Any]) -> None:
    for raw in message["blocks"]:
        parsed = SlackBlock.parse(raw)
        assert parsed is not None, raw
        parsed.validate_json()


def test_a_failing_task_posts_exactly_one_alert_naming_the_task(
    environment: str, slack: list[dict[str, Any]]
) -> None:
    state = flow_with_failing_task(environment, return_state=True)
    assert state.is_failed()
    assert len(slack) == 1
    message = slack[0]
    assert_valid_block_kit(message)
    body = texts(message)
    run_link = f"http://127.0.0.1:4200/runs/flow-run/{state.state_details.flow_run_id}"
    for expected in ("[staging] Failed", "alert-on-task", "flaky_step", "ValueError",
                     "the upstream API answered 503", "<!here>", run_link):  # fmt: skip
        assert expected in body
    assert SECRET_IN_URL not in body


def test_a_failing_flow_posts_exactly_one_alert(
    environment: str, slack: list[dict[str, Any]]
) -> None:
    failing_flow(environment, return_state=True)
    assert len(slack) == 1
    assert "nothing to transform" in texts(slack[0])
    assert_valid_block_kit(slack[0])


def test_a_flow_that_times_out_posts_exactly_one_alert(
    environment: str, slack: list[dict[str, Any]]
) -> None:
    state = slow_flow(environment, return_state=True)
    assert state.name == "TimedOut"
    assert len(slack) == 1
    assert "TimedOut" in texts(slack[0])


@pytest.mark.parametrize("parallel", [False, True], ids=["one connection", "mapped"])
def test_two_failed_tables_are_one_alert_naming_both(
    environment: str, slack: list[dict[str, Any]], tmp_path: Path, parallel: bool
) -> None:
    data = tmp_path / "jaffle"
    generate_jaffle_shop(data, days=2, orders_per_day_at_start=20)
    (data / "raw_products.csv").unlink()
    (data / "raw_stores.csv").unlink()
    state = extract_load(
        environment=environment, data_dir=str(data), parallel=parallel, return_state=True
    )
    assert state.is_failed()
    assert len(slack) == 1
    body = texts(slack[0])
    assert "raw_products" in body and "raw_stores" in body and "no file found" in body
    failed = [f["text"] for b in slack[0]["blocks"] for f in b.get("fields", [])
              if f["text"].startswith("*Failed*")]  # fmt: skip
    assert sorted(failed[0].split("\n")[1].split(", ")) == ["raw_products", "raw_stores"]


@flow(name="alert-parent", **FLOW_HOOKS)
def parent_of_a_failing_subflow(environment: str) -> None:
    flow_with_failing_task(environment)


def test_a_failing_subflow_and_its_parent_are_one_alert_from_the_parent(
    environment: str, slack: list[dict[str, Any]]
) -> None:
    state = parent_of_a_failing_subflow(environment, return_state=True)
    assert state.is_failed()
    assert len(slack) == 1
    body = texts(slack[0])
    assert "alert-parent" in body and "flaky_step" in body and "answered 503" in body


@flow(name="alert-async-parent", **FLOW_HOOKS)
async def async_parent_of_a_failing_subflow(environment: str) -> None:
    flow_with_failing_task(environment)


@flow(name="alert-async-reported", **FLOW_HOOKS)
async def async_flow_with_reported_rows(environment: str) -> list[TableLoad]:
    row = UntrustedRow("orders.csv", 7, "id=17", "ordered_at", None)
    return [TableLoad("raw_orders", "incremental", untrusted_count=1, untrusted_rows=[row])]


def test_hooks_of_an_async_flow_alert_as_a_sync_flows_do(
    environment: str, slack: list[dict[str, Any]]
) -> None:
    """The elt job is async: Prefect's sync calls inside its hooks would return coroutines."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        failed = asyncio.run(async_parent_of_a_failing_subflow(environment, return_state=True))
        reported = asyncio.run(async_flow_with_reported_rows(environment, return_state=True))
    assert [str(w.message) for w in warned if "never awaited" in str(w.message)] == []
    assert failed.is_failed() and reported.is_completed()
    assert len(slack) == 2
    assert "flaky_step" in texts(slack[0]) and "answered 503" in texts(slack[0])
    assert "Completed, with rows to check" in texts(slack[1])
    assert "orders.csv row 7 (id=17): ordered_at = NULL" in texts(slack[1])


DRIP_SECONDS = 10


def dripping(finished: threading.Event) -> Response:
    """An answer that sends a byte every half second for DRIP_SECONDS: no read times out."""

    def drip() -> Iterator[bytes]:
        for _ in range(DRIP_SECONDS * 2):
            time.sleep(0.5)
            yield b"."
        finished.set()

    return Response(drip(), status=200)


@pytest.mark.parametrize("webhook", ["answers 500", "hangs", "drips"])
def test_a_broken_webhook_never_changes_the_runs_own_failure(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, webhook: str
) -> None:
    monkeypatch.setattr(blocks.alerts, "SEND_TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(blocks.alerts, "SEND_DEADLINE_SECONDS", 2)
    drip_finished = threading.Event()
    if webhook == "answers 500":
        httpserver.expect_request("/broken").respond_with_data("boom", status=500)
    elif webhook == "hangs":
        httpserver.expect_request("/broken").respond_with_handler(
            lambda request: (time.sleep(3), Response("late"))[1]
        )
    else:
        httpserver.expect_request("/broken").respond_with_handler(
            lambda request: dripping(drip_finished)
        )
    environment = slack_environment(tmp_path, httpserver.url_for("/broken"))
    state = failing_flow(environment, return_state=True)
    # The run ended while the webhook was still dripping: the deadline ended the send.
    assert not drip_finished.is_set()
    if webhook == "drips":
        drip_finished.wait(DRIP_SECONDS * 2)  # free the one-threaded receiver for the next test
    assert state.is_failed()
    assert "nothing to transform: raw schema is empty" in (state.message or "")


@flow(name="alert-markup", **FLOW_HOOKS)
def flow_failing_with_markup(environment: str) -> None:
    raise RuntimeError("bad row <!channel> see <https://evil.example|here> ``` *bold* & done")


def test_exception_text_reaches_slack_as_plain_text_inside_its_code_block(
    environment: str, slack: list[dict[str, Any]]
) -> None:
    flow_failing_with_markup(environment, return_state=True)
    assert len(slack) == 1
    reason = next(
        block["text"]["text"] for block in slack[0]["blocks"]
        if block.get("text", {}).get("text", "").startswith("*Reason*")
    )  # fmt: skip
    inside = reason.removeprefix("*Reason*\n```").removesuffix("```")
    assert "```" not in inside  # the text can't close its code block
    assert "<!channel>" not in reason and "<https://evil.example|here>" not in reason
    assert "&lt;!channel&gt;" in reason and "&amp; done" in reason


def test_without_slack_the_alert_goes_to_the_console(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"console-{uuid.uuid4().hex[:8]}"
    save_environment(name, alerts=ConsoleAlerts())
    with caplog.at_level("ERROR", logger="prefect.elt.alerts"):
        failing_flow(name, return_state=True)
    alerts = [r.getMessage() for r in caplog.records if r.name == "prefect.elt.alerts"]
    assert len(alerts) == 1
    assert "[local] Failed: alert-on-flow" in alerts[0]
    assert "nothing to transform" in alerts[0]


@pytest.mark.parametrize("broken", ["warehouse", "alerts"])
def test_an_environment_that_does_not_load_still_alerts_and_the_run_fails(
    httpserver: HTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    received: list[dict[str, Any]] = []
    httpserver.expect_request("/still-linked").respond_with_handler(
        lambda request: (received.append(json.loads(request.data)), Response("ok"))[1]
    )
    name = slack_environment(tmp_path, httpserver.url_for("/still-linked"))
    saved = load_environment_documents(name)
    links = {role: link(getattr(saved, role)) for role in ("warehouse", "transform", "alerts")}
    # As the UI saves an environment one of whose fields lost its link.
    save_document_data("elt-environment", name, {**links, broken: None})
    with caplog.at_level("ERROR", logger="prefect.elt.alerts"):
        state = failing_flow(name, return_state=True)
    assert state.is_failed() and "nothing to transform" in (state.message or "")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "prefect.elt.alerts")
    assert f"Environment {name!r} did not load, so this alert goes to the" in logged
    assert f"{broken}: is not a link to a document: pick a" in logged
    if broken == "warehouse":  # the alerts document it links still loads: Slack hears of it
        assert len(received) == 1 and "nothing to transform" in json.dumps(received[0])
    else:
        assert received == []
        assert f"[{name}] Failed: alert-on-flow" in logged and "nothing to transform" in logged
