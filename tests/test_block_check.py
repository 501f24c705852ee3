"""What is checked after a save and at load: which documents, and messages naming document,
field and fix; the server spec saves as the UI does and times the alert."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.events.actions import RunDeployment
from prefect.exceptions import ObjectNotFound
from prefect.server.events.schemas import lifecycle
from prefect.server.events.schemas.automations import EventTrigger as ServerEventTrigger
from prefect.server.events.schemas.events import ReceivedEvent
from prefect.server.schemas.core import BlockDocument as ServerBlockDocument
from prefect.server.schemas.core import BlockSchema as ServerBlockSchema
from prefect.types._datetime import DateTime
from pydantic import ValidationError
from pytest_httpserver import HTTPServer
from werkzeug import Response

from blocks import DuckDBWarehouse, ELTEnvironment, SnowflakeWarehouse
from blocks.environment import (
    LOCAL,
    describe_validation_error,
    document_id,
    local_links_problem,
)
from deployments.automations import apply_block_check_automations, build_block_check_automations
from pipeline.block_check import (
    Document,
    Revert,
    Save,
    check_report,
    check_saved_document,
    checked_block_type_names,
    plan_check,
    read_saves,
    revert_report,
    reverted_fields,
    saves_up_to,
)
from tests.conftest import REPO_ROOT
from tests.support.environments import link, save_document_data, save_environment, slack_alerts

# --- messages at load (no server) ----------------------------------------------------------

LINKED = {"block_type_slug": "duckdb-warehouse"}
TRANSFORM = {"block_type_slug": "dbt-core-transform"}
ALERTS = {"block_type_slug": "console-alerts"}


def environment_error(**fields: Any) -> str:
    data = {"warehouse": LINKED, "transform": TRANSFORM, "alerts": ALERTS, **fields}
    data = {key: value for key, value in data.items() if value != "missing"}
    with pytest.raises(ValidationError) as caught:
        ELTEnvironment.model_validate(data)
    return describe_validation_error(caught.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"warehouse": "missing"},
            "warehouse: no document chosen: pick a DuckDB Warehouse or Snowflake Warehouse "
            "document",
        ),
        (
            {"warehouse": None},
            "warehouse: is not a link to a document: pick a DuckDB Warehouse or Snowflake "
            "Warehouse document",
        ),
        (
            {"transform": "dbt-core-transform/prod"},
            "transform: is not a link to a document: pick a dbt Core Transform or dbt Cloud "
            "Transform document",
        ),
        (
            {"alerts": {"block_type_slug": "duckdb-warehouse"}},
            "alerts: links a duckdb-warehouse document, which is not a Console Alerts or Slack "
            "Alerts: pick a Console Alerts or Slack Alerts document",
        ),
        # A copy that fits neither member: the closer one (DuckDB, one bad field) speaks.
        ({"warehouse": {"path": 3}}, "warehouse.path: Input should be a valid string"),
    ],
    ids=["missing", "null", "text", "wrong-type", "closest-member"],
)
def test_a_malformed_environment_field_names_the_field_and_the_document_to_pick(
    fields: dict[str, Any], expected: str
) -> None:
    assert environment_error(**fields) == expected


def test_a_field_named_like_an_environment_role_elsewhere_keeps_its_own_message() -> None:
    # Snowflake's `warehouse` is the virtual warehouse's name, not a document to pick.
    with pytest.raises(ValidationError) as caught:
        SnowflakeWarehouse.model_validate({"account": "myorg-x", "user": "u", "database": "D"})
    assert describe_validation_error(caught.value) == "warehouse: Field required"


@pytest.mark.parametrize(
    ("environment", "linked", "named_roles"),
    [
        ("prod", {"warehouse": "local", "transform": "prod", "alerts": "prod"}, ["warehouse"]),
        ("staging", {"warehouse": "local", "transform": "x", "alerts": "local"},
         ["warehouse, alerts"]),
        ("prod", {"warehouse": "prod", "transform": "prod", "alerts": "prod"}, []),
        ("prod", {"warehouse": None, "transform": None, "alerts": None}, []),  # copies
        ("prod", {"warehouse": "local-2", "transform": "localx", "alerts": "Local"}, []),
        ("local", {"warehouse": "local", "transform": "local", "alerts": "local"}, []),
    ],
)  # fmt: skip
def test_a_non_local_environment_linking_a_local_document_is_refused_naming_the_fix(
    environment: str, linked: dict[str, str | None], named_roles: list[str]
) -> None:
    problem = local_links_problem(environment, linked)
    if not named_roles:
        assert problem == ""
        return
    assert f"Environment {environment!r} links this machine's `local` document" in problem
    assert f"for {named_roles[0]}:" in problem
    assert f"Pick the {environment} document for {named_roles[0]}" in problem
    assert f"--environment {environment}" in problem


# --- which documents a save checks (no server) ---------------------------------------------


def doc(slug: str, name: str, *links: Document) -> Document:
    return Document(uuid.uuid4(), slug, name, tuple(link.id for link in links))


WEBHOOK = doc("slack-incoming-webhook", "prod")
PROD_PARTS = (
    doc("snowflake-warehouse", "prod"),
    doc("dbt-cloud-transform", "prod"),
    doc("slack-alerts", "prod", WEBHOOK),
)
PROD = doc("elt-environment", "prod", *PROD_PARTS)
SHARED = doc("dbt-core-transform", "shared")
LOCAL_WAREHOUSE = doc("duckdb-warehouse", "local")
STAGING = doc("elt-environment", "staging", LOCAL_WAREHOUSE, SHARED, PROD_PARTS[2])
QA = doc("elt-environment", "qa", LOCAL_WAREHOUSE, SHARED)
ORPHAN_PROD = doc("snowflake-warehouse", "prod-new")
NAMED_STAGING = doc("snowflake-warehouse", "staging")
DOCUMENTS = [WEBHOOK, *PROD_PARTS, PROD, SHARED, LOCAL_WAREHOUSE, STAGING, QA, ORPHAN_PROD,
             NAMED_STAGING]  # fmt: skip


@pytest.mark.parametrize(
    ("saved", "environment", "checked"),
    [
        # An environment: each document it links, then the environment itself.
        (PROD, "prod", ["snowflake-warehouse/prod", "dbt-cloud-transform/prod",
                        "slack-alerts/prod", "elt-environment/prod"]),
        (PROD, "staging", []),  # prod's own check reports it
        # A document an environment uses: the document, then the environment.
        (PROD_PARTS[0], "prod", ["snowflake-warehouse/prod", "elt-environment/prod"]),
        (PROD_PARTS[0], "staging", []),
        # Linked through another document (the webhook of the Slack Alerts).
        (WEBHOOK, "prod", ["slack-incoming-webhook/prod", "elt-environment/prod"]),
        (WEBHOOK, "staging", ["slack-incoming-webhook/prod", "elt-environment/staging"]),
        (SHARED, "qa", ["dbt-core-transform/shared", "elt-environment/qa"]),
        (SHARED, "prod", []),
        # Used by no environment: the environment of its name reports it, no other.
        (NAMED_STAGING, "staging", ["snowflake-warehouse/staging"]),
        (NAMED_STAGING, "prod", []),
        (ORPHAN_PROD, "prod", []),
    ],
)  # fmt: skip
def test_a_save_is_checked_by_the_environments_that_use_the_document(
    saved: Document, environment: str, checked: list[str]
) -> None:
    assert list(plan_check(saved.id, environment, DOCUMENTS).check) == checked


def test_a_document_that_is_gone_is_not_checked_and_the_plan_says_why() -> None:
    plan = plan_check(uuid.uuid4(), "prod", DOCUMENTS)
    assert plan.check == () and "gone" in plan.why


def test_a_cycle_of_links_ends() -> None:
    first = Document(uuid.uuid4(), "slack-alerts", "a")
    second = Document(uuid.uuid4(), "slack-incoming-webhook", "b", (first.id,))
    looped = Document(first.id, "slack-alerts", "a", (second.id,))
    assert plan_check(first.id, "a", [looped, second]).check == ("slack-alerts/a",)


def test_the_report_names_the_saved_document_and_each_problem_on_its_own_line() -> None:
    report = check_report(
        "snowflake-warehouse/prod", "updated",
        ["Block document 'snowflake-warehouse/prod' has invalid values: account: ...",
         "Environment 'prod' links this machine's `local` document for warehouse: ..."],
    )  # fmt: skip
    assert report.splitlines() == [
        "snowflake-warehouse/prod was updated with values a run would refuse:",
        "- Block document 'snowflake-warehouse/prod' has invalid values: account: ...",
        "- Environment 'prod' links this machine's `local` document for warehouse: ...",
    ]


# --- the automation matches the event Prefect's server emits (no server) -------------------


def lifecycle_event(action: str, block_type_name: str) -> ReceivedEvent:
    """The event Prefect's server emits for a saved document, built by its own code."""
    block_type_id, schema_id = uuid.uuid4(), uuid.uuid4()
    document = ServerBlockDocument(
        id=uuid.uuid4(), name="prod", data={"account": "x"}, block_schema_id=schema_id,
        block_schema=ServerBlockSchema(id=schema_id, checksum="c", fields={},
                                       block_type_id=block_type_id),
        block_type_id=block_type_id, block_type_name=block_type_name,
    )  # fmt: skip
    builder = {
        "created": lifecycle.block_document_created_event,
        "updated": lifecycle.block_document_updated_event,
        "deleted": lifecycle.block_document_deleted_event,
    }[action]
    event = builder(document, DateTime.now("UTC"))
    return ReceivedEvent(**event.model_dump())


def block_check_trigger() -> ServerEventTrigger:
    declarations = yaml.safe_load((REPO_ROOT / "deployments/automations.yaml").read_text())
    (automation,) = build_block_check_automations(
        "prod", uuid.uuid4(), declarations, checked_block_type_names()
    )
    return ServerEventTrigger.model_validate(automation.trigger.model_dump())


@pytest.mark.parametrize(
    ("action", "block_type_name", "fires"),
    [
        ("created", "Snowflake Warehouse", True),
        ("updated", "ELT Environment", True),
        ("updated", "Slack Incoming Webhook", True),
        ("created", "dbt Cloud Credentials", True),
        ("deleted", "Snowflake Warehouse", False),
        ("updated", "Process Work Pool Job", False),  # not this project's
        ("created", "Secret", False),
    ],
)
def test_the_automation_fires_on_a_save_of_this_projects_documents_only(
    action: str, block_type_name: str, fires: bool
) -> None:
    trigger = block_check_trigger()
    event = lifecycle_event(action, block_type_name)
    assert (trigger.covers(event) and trigger.expects(event.event)) == fires


def test_the_check_runs_with_the_saved_documents_id_and_how_it_was_saved() -> None:
    (automation,) = build_block_check_automations(
        "prod", uuid.uuid4(),
        yaml.safe_load((REPO_ROOT / "deployments/automations.yaml").read_text()), ["X"],
    )  # fmt: skip
    (action,) = automation.actions
    assert isinstance(action, RunDeployment) and action.parameters is not None
    assert action.parameters["environment"] == "prod"
    assert "event.resource.id" in action.parameters["block_document_id"]
    assert "event.event" in action.parameters["how"]
    assert action.parameters["event_id"] == "{{ event.id | string }}"  # this save, not the latest


# --- a save that puts back what the previous save changed (no server) ---------------------

V1 = {"path": "w.duckdb", "raw_schema": "raw", "memory_limit": ""}


@pytest.mark.parametrize(
    ("before_previous", "previous", "this", "reverted"),
    [
        # The previous save set memory_limit; this one (a stale form) put '' back.
        (V1, {**V1, "memory_limit": "2GB"}, V1, [Revert("memory_limit", "", "2GB")]),
        # ... and changed another field: only the one put back is named.
        (V1, {**V1, "memory_limit": "2GB"}, {**V1, "raw_schema": "raw2"},
         [Revert("memory_limit", "", "2GB")]),
        # Two fields put back, in field order.
        (V1, {**V1, "raw_schema": "raw2", "memory_limit": "2GB"}, V1,
         [Revert("memory_limit", "", "2GB"), Revert("raw_schema", "raw", "raw2")]),
        # Normal edits: a new value, or the previous save's value kept.
        (V1, {**V1, "memory_limit": "2GB"}, {**V1, "memory_limit": "4GB"}, []),
        (V1, {**V1, "memory_limit": "2GB"}, {**V1, "memory_limit": "2GB", "path": "x"}, []),
        (V1, V1, V1, []),  # saved unchanged
        # A field the previous save added (None: no string value), removed again.
        (V1, {**V1, "mention": "<!here>"}, V1, [Revert("mention", None, "<!here>")]),
        # A field the previous save removed (or set to a non-string), put back.
        ({**V1, "mention": "<!here>"}, V1, {**V1, "mention": "<!here>"},
         [Revert("mention", "<!here>", None)]),
        # A field only this save has: new, not put back.
        (V1, V1, {**V1, "mention": "<!here>"}, []),
        # A first or second save: nothing to compare with.
        (None, None, V1, []),
        (None, V1, {**V1, "memory_limit": "2GB"}, []),
    ],
    ids=["put-back", "put-back-and-edit", "two-fields", "new-value", "kept", "unchanged",
         "added-then-removed", "removed-then-put-back", "added-now", "first-save",
         "second-save"],
)  # fmt: skip
def test_a_save_that_puts_back_what_the_previous_save_changed_names_each_field(
    before_previous: dict[str, str] | None,
    previous: dict[str, str] | None,
    this: dict[str, str],
    reverted: list[Revert],
) -> None:
    assert reverted_fields(before_previous, previous, this) == reverted


T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def save_at(seconds: float, event_id: uuid.UUID | None = None) -> Save:
    return Save(event_id or uuid.uuid4(), T0 + timedelta(seconds=seconds), {})


def test_saves_are_ordered_by_when_they_occurred_and_end_at_the_triggering_save() -> None:
    first, second, this, later = save_at(0), save_at(5), save_at(9), save_at(12)
    # Listed as they arrived (late ones last), not as they occurred.
    arrived = [this, later, first, second]
    assert saves_up_to(arrived, this.event_id) == [first, second, this]
    assert saves_up_to(arrived, None) == [first, second, this, later]  # no id: the latest
    assert saves_up_to(arrived, uuid.uuid4()) == []  # the save's event is not stored yet


def test_the_revert_report_names_document_field_values_time_and_what_to_do() -> None:
    report = revert_report(
        "duckdb-warehouse/prod", T0, [Revert("memory_limit", "", "2GB"), Revert("x", None, "y")]
    )
    assert report.splitlines()[:3] == [
        "duckdb-warehouse/prod was updated with older values put back:",
        "- `memory_limit`: the save at 2025-03-01 09:30:00 UTC changed it from '' to '2GB'; "
        "this save put '' back",
        "- `x`: the save at 2025-03-01 09:30:00 UTC changed it from (not set) to 'y'; this "
        "save put (not set) back",
    ]
    assert "Reload the block's page, check the values and save again" in report
    assert "If you meant it, nothing to do." in report


# --- a save that puts back what the previous save changed, through the server --------------


def saved_with_events(document_id: uuid.UUID, count: int) -> list[Save]:
    """The document's saves, oldest first, once the server has stored `count` of them (it
    stores events in batches, every 5 s)."""
    return wait_for(
        lambda: len(saves := saves_up_to(read_saves(str(document_id)), None)) >= count and saves,
        60,
    )


def test_a_save_putting_back_what_the_previous_save_changed_is_alerted_naming_the_field(
    prefect_api: str, caplog: pytest.LogCaptureFixture
) -> None:
    """~10 s: the check as the automation runs it for the third save (the event's id), with
    the environment's console alerts; then a normal edit reports nothing."""
    name = f"revert-{uuid.uuid4().hex[:8]}"
    save_environment(name, warehouse=DuckDBWarehouse(path="data/revert.duckdb"))  # v1
    v1 = DuckDBWarehouse.load(name).model_dump()
    document = save_document_data("duckdb-warehouse", name, {**v1, "memory_limit": "2GB"})
    # v3, from a form filled before v2: memory_limit back to '', and another field edited.
    save_document_data("duckdb-warehouse", name, {**v1, "transform_schema": "analytics_two"})
    saves = saved_with_events(document, 3)
    with caplog.at_level("ERROR", logger="prefect.elt.alerts"):
        result = check_saved_document(name, str(document), "updated", str(saves[-1].event_id))
    alerts = "\n".join(r.getMessage() for r in caplog.records if r.name == "prefect.elt.alerts")
    assert f"duckdb-warehouse/{name} was updated with older values put back" in alerts
    when = saves[-2].occurred.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert (
        f"`memory_limit`: the save at {when} changed it from '' to '2GB'; this save put '' back"
    ) in alerts
    assert "transform_schema" not in alerts  # edited, not put back
    assert "If you meant it, nothing to do." in alerts
    assert "memory_limit" in result

    caplog.clear()
    save_document_data(  # v4: a normal edit
        "duckdb-warehouse", name, {**v1, "transform_schema": "analytics_two", "raw_schema": "r2"}
    )
    saves = saved_with_events(document, 4)
    assert saves[-1].data.get("raw_schema") == "r2"
    with caplog.at_level("ERROR", logger="prefect.elt.alerts"):
        result = check_saved_document(name, str(document), "updated", str(saves[-1].event_id))
    assert result == "OK"
    assert not [r for r in caplog.records if r.name == "prefect.elt.alerts"]


# --- after a save, through the server (one served check, one captured webhook) -------------

ALERT_WITHIN_SECONDS = 60  # the issue's promise, timed by this test's own clock
PASSWORD = "pw-that-must-never-show"
WEBHOOK_SECRET = "T0/B0/webhook-secret-never-shown"


@dataclass
class Checked:
    """An environment whose saves the block check reports to a captured Slack webhook."""

    name: str
    received: list[dict[str, Any]]
    deployment_id: uuid.UUID
    good_save_check: FlowRun | None = None  # the fixture's good save: its finished check
    posted_after_good_save: int = 0

    def check_runs(self, document_id: uuid.UUID) -> list[FlowRun]:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[self.deployment_id]))
            )
        return [
            r for r in runs if (r.parameters or {}).get("block_document_id") == str(document_id)
        ]

    def wait_for_check(self, document_id: uuid.UUID, count: int, seconds: float) -> FlowRun:
        """The `count`-th check run of the document, once it has finished."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            runs = [r for r in self.check_runs(document_id) if r.state and r.state.is_final()]
            if len(runs) >= count:
                return max(runs, key=lambda run: run.created or 0)
            time.sleep(0.5)
        raise AssertionError(f"no finished check run #{count} within {seconds} s")

    def wait_for_alert(self, seen: int, started: float) -> tuple[str, float]:
        """The next message after the `seen` ones, and how long after `started` it came."""
        while time.monotonic() - started < ALERT_WITHIN_SECONDS + 30:
            if len(self.received) > seen:
                # As a person reads it: without the zero-width spaces that keep a backtick
                # from closing Slack's code block.
                text = json.dumps(self.received[seen], ensure_ascii=False).replace("\u200b", "")
                return text, time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError("no validation alert came")


@pytest.fixture(scope="module")
def checked(prefect_api: str) -> Iterator[Checked]:
    """Slow (~60 s): serves the check flow in a subprocess, then saves a good document and waits
    for its check to finish (so the server has loaded the automation before a save is timed)."""
    received: list[dict[str, Any]] = []
    slack = HTTPServer(host="127.0.0.1")
    slack.expect_request(f"/services/{WEBHOOK_SECRET}").respond_with_handler(
        lambda request: (received.append(json.loads(request.data)), Response("ok"))[1]
    )
    slack.start()
    name = f"check-{uuid.uuid4().hex[:8]}"
    save_environment(
        name, alerts=slack_alerts(slack.url_for(f"/services/{WEBHOOK_SECRET}"),
                                  environment_label=name),
    )  # fmt: skip
    runner = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests/support/block_check_runner.py"), name],
        env={**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1",
             "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    local_warehouse()  # before the automation: no check of it shares a timed test's queue
    try:
        deployment = wait_for(lambda: _deployment(f"block-check/{name}-block-check"), 120)
        assert apply_block_check_automations(name) == [f"elt-{name}-block-saved"]
        environment = Checked(name, received, deployment.id)
        warehouse = DuckDBWarehouse.load(name)
        good = {**warehouse.model_dump(), "transform_schema": "analytics_two"}
        save_document_data("duckdb-warehouse", name, good)  # a good save, as the UI does it
        environment.good_save_check = environment.wait_for_check(document_id(warehouse), 1, 120)
        environment.posted_after_good_save = len(received)
        yield environment
    finally:
        with get_client(sync_client=True) as client:  # later saves in the session run no check
            for automation in client.read_automations_by_name(f"elt-{name}-block-saved"):
                client.delete_automation(automation.id)
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
        slack.stop()


def local_warehouse() -> DuckDBWarehouse:
    """`duckdb-warehouse/local`, saved as setup declares it when missing (so setup's own tests
    find it unchanged)."""
    try:
        return DuckDBWarehouse.load(LOCAL)
    except ValueError:
        warehouse = DuckDBWarehouse(path="data/warehouse.duckdb")
        warehouse.save(LOCAL)
        return warehouse


def test_a_good_save_posts_nothing_and_its_check_completes(checked: Checked) -> None:
    # The fixture's save: waiting for its check is what proves the automation is loaded.
    run = checked.good_save_check
    assert run is not None and run.state is not None and run.state.is_completed(), run
    assert checked.posted_after_good_save == 0
    uuid.UUID(run.parameters["event_id"])  # the automation passed the save's event


def test_a_bad_document_created_as_the_ui_does_is_alerted_within_a_minute(
    checked: Checked,
) -> None:
    """Slow (~25-40 s): the check is a flow run in a new process that imports the blocks."""
    # Named like the environment and used by none yet: the environment's check reports it.
    bad = {"account": "https://myorg-acct.snowflakecomputing.com", "user": "loader",
           "warehouse": "LOAD_WH", "database": "ANALYTICS", "auth_method": "password",
           "password": PASSWORD}  # fmt: skip
    seen, started = len(checked.received), time.monotonic()
    save_document_data("snowflake-warehouse", checked.name, bad)
    message, latency = checked.wait_for_alert(seen, started)
    print(f"save -> alert (created): {latency:.1f} s")
    assert latency < ALERT_WITHIN_SECONDS
    assert f"snowflake-warehouse/{checked.name} was created with values a run would refuse" in (
        message
    )
    assert f"snowflake-warehouse/{checked.name}" in message
    assert "account" in message and "give only the account identifier" in message
    assert PASSWORD not in message and WEBHOOK_SECRET not in message


def test_a_bad_update_of_a_document_the_environment_uses_is_alerted_within_a_minute(
    checked: Checked,
) -> None:
    """Slow (~25-40 s): the check is a flow run in a new process that imports the blocks."""
    warehouse = DuckDBWarehouse.load(checked.name)
    seen, started = len(checked.received), time.monotonic()
    save_document_data(
        "duckdb-warehouse", checked.name, {**warehouse.model_dump(), "raw_schema": "raw data"}
    )
    message, latency = checked.wait_for_alert(seen, started)
    print(f"save -> alert (updated): {latency:.1f} s")
    assert latency < ALERT_WITHIN_SECONDS
    assert f"duckdb-warehouse/{checked.name} was updated with values a run would refuse" in message
    assert "raw_schema" in message and "plain SQL identifier" in message
    assert WEBHOOK_SECRET not in message


def test_an_environment_updated_to_link_a_local_document_is_alerted_naming_the_fix(
    checked: Checked,
) -> None:
    """Slow (~25-45 s): the check is a flow run in a new process that imports the blocks."""
    local = local_warehouse()
    links = stored_links(checked.name)  # read, not loaded: an earlier test broke its warehouse
    del links["warehouse"]
    seen, started = len(checked.received), time.monotonic()
    save_document_data("elt-environment", checked.name, {**links, "warehouse": link(local)})
    message, latency = checked.wait_for_alert(seen, started)
    print(f"save -> alert (environment updated): {latency:.1f} s")
    assert latency < ALERT_WITHIN_SECONDS
    assert f"elt-environment/{checked.name} was updated" in message
    assert "links this machine's `local` document for warehouse" in message
    assert f"Pick the {checked.name} document for warehouse" in message


def stored_links(environment: str) -> dict[str, Any]:
    """The environment's links as stored, without loading (or validating) what they link."""
    with get_client(sync_client=True) as client:
        stored = client.read_block_document_by_name(environment, "elt-environment")
    return {
        role: {"$ref": {"block_document_id": str(reference["block_document"]["id"])}}
        for role, reference in (stored.block_document_references or {}).items()
    }


def wait_for(condition: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds} s")


def _deployment(name: str) -> Any:
    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None
