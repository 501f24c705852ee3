"""Each environment is declared once (deployments/environments/), and setup follows the
declaration without clobbering what people changed in the UI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    BlockDocumentCreate,
    BlockDocumentUpdate,
    BlockSchemaCreate,
)
from prefect.settings import PREFECT_API_URL
from prefect_slack import SlackWebhook

from blocks import (
    ConsoleAlerts,
    DbtCoreTransform,
    DuckDBWarehouse,
    ELTEnvironment,
    SlackAlerts,
    SnowflakeWarehouse,
    load_environment,
)
from blocks.environment import InvalidBlockDocumentError, register_block_types
from deployments.declarations import (
    BlockDeclaration,
    DeclarationError,
    MissingSettingError,
    all_environments,
    ci_environments,
    environment_names,
    jobs,
    load_environment_declaration,
    parse_block,
)
from deployments.documents import (
    DocumentPlan,
    StoredDocument,
    apply_environment,
    plan_document,
)
from deployments.prefect_yaml import check_prefect_yaml, render_deployments
from tests.conftest import REPO_ROOT

BLOCK_TYPES = [
    "snowflake-warehouse", "duckdb-warehouse", "dbt-cloud-transform", "dbt-core-transform",
    "slack-alerts", "console-alerts", "elt-environment",
]  # fmt: skip
WEBHOOK_SECRET = "T000/B000/secret-in-the-webhook-url"


# --- declarations (no server) ---------------------------------------------------------------


def test_every_declared_environment_names_a_warehouse_a_transform_and_alerts() -> None:
    environments = all_environments()
    assert [env.name for env in environments] == ["local", "prod", "staging"]
    for environment in environments:
        assert set(environment.blocks) == {"warehouse", "transform", "alerts"}


def test_prefect_yaml_is_exactly_what_the_declarations_render() -> None:
    assert check_prefect_yaml() == ""


def test_adding_an_environment_is_adding_one_file(tmp_path: Path) -> None:
    for name in ("local", "staging"):
        (tmp_path / f"{name}.yaml").write_text(
            (REPO_ROOT / "deployments/environments" / f"{name}.yaml").read_text()
        )
    qa = yaml.safe_load((REPO_ROOT / "deployments/environments/staging.yaml").read_text())
    qa["work_pool"] = {"name": "elt-qa", "type": "kubernetes", "job_variables": {"namespace": "qa"}}
    qa["ci_deploy_order"] = 3
    (tmp_path / "qa.yaml").write_text(yaml.safe_dump(qa))
    deployments = render_deployments(all_environments(tmp_path), jobs())
    qa_deployments = [d for d in deployments if d["name"].startswith("qa-")]
    assert [d["name"] for d in qa_deployments] == [f"qa-{job}" for job in jobs()["jobs"]]
    assert all(d["work_pool"]["name"] == "elt-qa" for d in qa_deployments)
    assert all(d["work_pool"]["job_variables"]["namespace"] == "qa" for d in qa_deployments)
    assert all(d["parameters"]["environment"] == "qa" for d in qa_deployments)
    assert ci_environments(tmp_path) == ["staging", "qa"]


def test_ci_deploys_the_declared_environments_staging_before_prod() -> None:
    assert ci_environments() == ["staging", "prod"]
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/ci.yml").read_text())
    listing = workflow["jobs"]["environments"]["steps"][-1]["run"]
    assert "deployments.declarations" in listing
    deploy = workflow["jobs"]["deploy"]
    assert (
        "fromJSON(needs.environments.outputs.names)" in deploy["strategy"]["matrix"]["environment"]
    )


def test_a_secret_written_into_a_declaration_is_refused() -> None:
    with pytest.raises(DeclarationError, match="NAME of the variable holding the secret"):
        parse_block(
            {"type": "slack-incoming-webhook", "secrets": {"url": "https://hooks.slack.com/x"}},
            "staging.yaml: blocks.alerts.webhook",
        )


def test_an_unknown_environment_lists_the_declared_ones_and_how_to_add_one() -> None:
    with pytest.raises(DeclarationError) as refused:
        load_environment_declaration("qa")
    assert "local, prod, staging" in str(refused.value)
    assert "deployments/environments/qa.yaml" in str(refused.value)


SNOWFLAKE = BlockDeclaration(
    "snowflake-warehouse",
    settings={
        "account": "${SNOWFLAKE_ACCOUNT}",
        "role": "${SNOWFLAKE_ROLE:-}",
        "raw_schema": "RAW",
    },
    secrets={"private_key": "SNOWFLAKE_PRIVATE_KEY", "private_key_passphrase": "PASSPHRASE?"},
)
SLACK = BlockDeclaration(
    "slack-alerts",
    settings={"environment_label": "prod"},
    nested={"webhook": BlockDeclaration("slack-incoming-webhook", secrets={"url": "SLACK_URL"})},
)
DUCKDB = BlockDeclaration("duckdb-warehouse")
STORED_SNOWFLAKE = StoredDocument(
    {"account": "acme-prod", "role": "REPORTER", "raw_schema": "RAW", "private_key": "PEM",
     "user": "edited-in-the-ui"}
)  # fmt: skip
PLAN_CASES: dict[str, tuple[BlockDeclaration, StoredDocument | None, dict[str, str], Any]] = {
    "a missing document is created with the declared values": (
        SNOWFLAKE, None, {"SNOWFLAKE_ACCOUNT": "acme-prod", "SNOWFLAKE_PRIVATE_KEY": "PEM"},
        ("create", {"account": "acme-prod", "raw_schema": "RAW", "private_key": "PEM"}),
    ),
    "a document as declared is left alone": (
        SNOWFLAKE, STORED_SNOWFLAKE, {"SNOWFLAKE_ACCOUNT": "acme-prod"}, ("unchanged", {}),
    ),
    "an undeclared field edited in the UI and an unset optional variable are left alone": (
        SNOWFLAKE, STORED_SNOWFLAKE, {"SNOWFLAKE_ACCOUNT": "acme-prod"}, ("unchanged", {}),
    ),
    "a declared field changed in the UI is set back: the declaration wins": (
        SNOWFLAKE, STORED_SNOWFLAKE, {"SNOWFLAKE_ACCOUNT": "acme-new"},
        ("update", {"account": "acme-new"}),
    ),
    "a set optional variable updates its field": (
        SNOWFLAKE, STORED_SNOWFLAKE,
        {"SNOWFLAKE_ACCOUNT": "acme-prod", "SNOWFLAKE_ROLE": "LOADER"},
        ("update", {"role": "LOADER"}),
    ),
    "a stored secret is kept when its variable is unset": (
        SNOWFLAKE, STORED_SNOWFLAKE,
        {"SNOWFLAKE_ACCOUNT": "acme-prod", "SNOWFLAKE_ROLE": "REPORTER"},
        ("unchanged", {}),
    ),
    "a rotated secret replaces the stored one": (
        SNOWFLAKE, STORED_SNOWFLAKE,
        {"SNOWFLAKE_ACCOUNT": "acme-prod", "SNOWFLAKE_PRIVATE_KEY": "NEW"},
        ("update", {"private_key": "NEW"}),
    ),
    "a new document without its secret names the variable": (
        SNOWFLAKE, None, {"SNOWFLAKE_ACCOUNT": "acme-prod"}, ("missing", ["SNOWFLAKE_PRIVATE_KEY"]),
    ),
    "a required setting's unset variable is named": (
        SNOWFLAKE, STORED_SNOWFLAKE, {}, ("missing", ["SNOWFLAKE_ACCOUNT"]),
    ),
    "a reference the older version saved as text is replaced by a document reference": (
        BlockDeclaration("elt-environment", nested={"warehouse": DUCKDB}),
        StoredDocument({"warehouse": "duckdb-warehouse/prod"}), {},
        ("update", {"warehouse": "duckdb-warehouse/prod"}),
    ),
    "a nested document is a reference to the environment's document of that type": (
        SLACK, None, {}, ("create", {"environment_label": "prod",
                                     "webhook": "slack-incoming-webhook/prod"}),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PLAN_CASES))
def test_setup_plans_each_document_from_the_declaration(case: str) -> None:
    declaration, stored, environ, (action, expected) = PLAN_CASES[case]
    plan = plan_document(declaration, "prod", stored, environ)
    if action == "missing":
        assert list(plan.missing) == expected
        return
    assert (plan.action, dict(plan.values)) == (action, expected)


def test_a_migrated_document_takes_the_secret_its_older_version_held() -> None:
    webhook = SLACK.nested["webhook"]
    plan = plan_document(webhook, "prod", None, {}, fallback={"url": "https://hooks/legacy"})
    assert (plan.action, dict(plan.values)) == ("create", {"url": "https://hooks/legacy"})


def test_what_setup_prints_never_holds_a_secret() -> None:
    plan: DocumentPlan = plan_document(
        SNOWFLAKE, "prod", STORED_SNOWFLAKE,
        {"SNOWFLAKE_ACCOUNT": "acme-prod", "SNOWFLAKE_PRIVATE_KEY": "NEW-SECRET"},
    )  # fmt: skip
    printed = " ".join(change.describe() for change in plan.changes)
    assert "private_key" in printed
    assert "NEW-SECRET" not in printed and "PEM" not in printed


def test_the_embedded_default_runs_without_any_document() -> None:
    environment = load_environment_declaration("local")
    assert environment.blocks["warehouse"].type == "duckdb-warehouse"
    assert environment.work_pool.type == "process"


# --- setup against a Prefect server ---------------------------------------------------------


def production_environ(webhook_url: str, private_key_pem: str) -> dict[str, str]:
    return {
        "SNOWFLAKE_ACCOUNT": "myorg-prod",
        "SNOWFLAKE_USER": "ELT_SERVICE",
        "SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
        "SNOWFLAKE_DATABASE": "ANALYTICS",
        "SNOWFLAKE_PRIVATE_KEY": private_key_pem,
        "DBT_CLOUD_ACCOUNT_ID": "12",
        "DBT_CLOUD_JOB_ID": "71",
        "DBT_CLOUD_API_KEY": "dbtc_secret_token",
        "SLACK_WEBHOOK_URL": webhook_url,
    }


def renamed(environment_name: str, as_name: str) -> Any:
    """The declaration of `environment_name`, saved under a test's own name."""
    declared = load_environment_declaration(environment_name)
    return type(declared)(**{**declared.__dict__, "name": as_name})


@pytest.mark.usefixtures("prefect_api")
def test_setup_twice_registers_blocks_and_leaves_one_document_of_each() -> None:
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    for _ in range(2):
        completed = subprocess.run(
            [sys.executable, "-m", "deployments.setup", "--environment", "local"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
    assert "elt-environment/local" in completed.stdout
    assert "unchanged" in completed.stdout and "create" not in completed.stdout
    environment = load_environment("local")
    assert isinstance(environment.warehouse, DuckDBWarehouse)
    assert isinstance(environment.transform, DbtCoreTransform)
    assert isinstance(environment.alerts, ConsoleAlerts)
    with get_client(sync_client=True) as client:
        slugs = {block_type.slug for block_type in client.read_block_types()}
        assert set(BLOCK_TYPES) <= slugs
        documents = client.read_block_documents()
    local = [d.name for d in documents if d.name == "local"]
    assert len(local) == 4  # warehouse, transform, alerts, environment: one of each


@pytest.mark.usefixtures("prefect_api")
def test_a_deploy_keeps_what_people_changed_in_the_ui_and_stores_each_secret_once(
    private_key_pem: str,
) -> None:
    name = f"prod-{uuid.uuid4().hex[:6]}"
    declared = renamed("prod", name)
    webhook_url = f"https://hooks.slack.com/services/{WEBHOOK_SECRET}"
    environ = production_environ(webhook_url, private_key_pem)
    first = apply_environment(declared, environ)
    assert {plan.action for plan in first.plans} == {"create"}
    # People edit undeclared fields in the UI: a mention, a regional domain, a role.
    alerts = SlackAlerts.load(name)
    alerts.mention = "<!here>"
    alerts.save(name, overwrite=True)
    warehouse = SnowflakeWarehouse.load(name)
    warehouse.role = "REPORTER"
    warehouse.save(name, overwrite=True)
    second = apply_environment(declared, environ)
    assert {plan.action for plan in second.plans} == {"unchanged"}
    environment = load_environment(name)
    assert isinstance(environment.alerts, SlackAlerts)
    assert environment.alerts.mention == "<!here>"
    assert isinstance(environment.warehouse, SnowflakeWarehouse)
    assert environment.warehouse.role == "REPORTER"
    # The webhook URL lives in one document, which the alerts reference.
    assert environment.alerts.webhook.url.get_secret_value() == webhook_url
    assert documents_storing(WEBHOOK_SECRET) == [("slack-incoming-webhook", name)]


@pytest.mark.usefixtures("prefect_api")
def test_a_declared_field_changed_in_the_ui_is_set_back_and_setup_says_so(
    private_key_pem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"stg-{uuid.uuid4().hex[:6]}"
    declared = renamed("staging", name)
    environ = production_environ("https://hooks.slack.com/services/T/B/x", private_key_pem)
    apply_environment(declared, environ)
    warehouse = SnowflakeWarehouse.load(name)
    warehouse.raw_schema = "RAW_BY_HAND"
    warehouse.save(name, overwrite=True)
    plans = apply_environment(declared, environ).plans
    changed = [plan for plan in plans if plan.action == "update"]
    assert [plan.reference for plan in changed] == [f"snowflake-warehouse/{name}"]
    assert [c.describe() for c in changed[0].changes] == ["raw_schema: 'RAW_BY_HAND' -> 'RAW'"]
    assert SnowflakeWarehouse.load(name).raw_schema == "RAW"


@pytest.mark.usefixtures("prefect_api")
def test_setup_moves_a_document_saved_on_an_older_schema_to_the_current_one() -> None:
    # An older schema still had defaults, which the UI's edit form writes over saved values.
    name = f"loc-{uuid.uuid4().hex[:6]}"
    declared = renamed("local", name)
    apply_environment(declared, {})
    older = DuckDBWarehouse.model_json_schema()
    older["properties"]["memory_limit"]["default"] = ""
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(name, "duckdb-warehouse")
        schema = client.create_block_schema(
            BlockSchemaCreate(fields=older, block_type_id=document.block_type_id)
        )
        update = BlockDocumentUpdate(block_schema_id=schema.id, data={"memory_limit": "1GB"})
        client.update_block_document(document.id, update)
    assert DuckDBWarehouse.load(name)._block_schema_id == schema.id

    apply_environment(declared, {})
    moved = DuckDBWarehouse.load(name)
    current = DuckDBWarehouse._calculate_schema_checksum()
    with get_client(sync_client=True) as client:
        stored = client.read_block_document_by_name(name, "duckdb-warehouse")
    assert stored.block_schema is not None and stored.block_schema.checksum == current
    assert (moved.memory_limit, moved.path) == ("1GB", "data/warehouse.duckdb")


@pytest.mark.usefixtures("prefect_api")
def test_a_missing_variable_is_named_and_nothing_is_saved(private_key_pem: str) -> None:
    name = f"stg-{uuid.uuid4().hex[:6]}"
    environ = production_environ("https://hooks.slack.com/services/T/B/x", private_key_pem)
    del environ["SLACK_WEBHOOK_URL"], environ["SNOWFLAKE_USER"]
    with pytest.raises(MissingSettingError, match="SLACK_WEBHOOK_URL, SNOWFLAKE_USER"):
        apply_environment(renamed("staging", name), environ)
    with get_client(sync_client=True) as client:
        assert not [d for d in client.read_block_documents() if d.name == name]


def documents_storing(secret: str) -> list[tuple[str, str]]:
    """(type, name) of every document whose own values hold `secret` (the server shows a
    referenced document's values inside the referencing one: those are not stored there)."""
    with get_client(sync_client=True) as client:
        documents = client.read_block_documents(include_secrets=True)
    return [
        (document.block_type.slug if document.block_type else "", document.name or "")
        for document in documents
        if secret
        in str({k: v for k, v in (document.data or {}).items()
                if k not in (document.block_document_references or {})})
    ]  # fmt: skip


def save_legacy_document(slug: str, name: str, data: dict[str, Any]) -> None:
    """A document as the older version saved it (fields this version no longer has)."""
    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug(slug)
        schema = client.get_most_recent_block_schema_for_block_type(block_type.id)
        assert schema is not None
        client.create_block_document(
            BlockDocumentCreate(
                name=name, data=data, block_schema_id=schema.id, block_type_id=block_type.id
            )
        )


@pytest.mark.usefixtures("prefect_api")
def test_setup_migrates_the_older_documents_and_drops_the_automations_copy_of_the_webhook(
    private_key_pem: str,
) -> None:
    register_block_types()  # as setup does first
    name = f"old-{uuid.uuid4().hex[:6]}"
    legacy_url = f"https://hooks.slack.com/services/{WEBHOOK_SECRET}-{name}"
    save_legacy_document("slack-alerts", name, {"url": legacy_url, "environment_label": name})
    save_legacy_document(
        "elt-environment", name,
        {"warehouse": f"snowflake-warehouse/{name}", "transform": f"dbt-cloud-transform/{name}",
         "alerts": f"slack-alerts/{name}"},
    )  # fmt: skip
    SlackWebhook(url=legacy_url).save(f"elt-{name}")
    with pytest.raises(InvalidBlockDocumentError, match="older version"):
        load_environment(name)
    environ = production_environ("", private_key_pem)
    del environ["SLACK_WEBHOOK_URL"]
    apply_environment(renamed("staging", name), environ)
    from deployments.automations import remove_legacy_webhook_copy

    alerts = load_environment(name).alerts
    assert isinstance(alerts, SlackAlerts)
    assert alerts.webhook.url.get_secret_value() == legacy_url
    remove_legacy_webhook_copy(name, kept=alerts.webhook._block_document_id)  # type: ignore[arg-type]
    assert documents_storing(legacy_url) == [("slack-incoming-webhook", name)]


@pytest.mark.usefixtures("prefect_api")
def test_an_environment_is_made_of_the_documents_it_references() -> None:
    name = f"env-{uuid.uuid4().hex[:6]}"
    DuckDBWarehouse(path="somewhere.duckdb").save(name)
    DbtCoreTransform().save(name)
    ConsoleAlerts().save(name)
    environment = ELTEnvironment(
        warehouse=DuckDBWarehouse.load(name),
        transform=DbtCoreTransform.load(name),
        alerts=ConsoleAlerts.load(name),
    )
    environment.save(name)
    # Editing the warehouse document changes what the environment runs with.
    warehouse = DuckDBWarehouse.load(name)
    warehouse.path = "elsewhere.duckdb"
    warehouse.save(name, overwrite=True)
    loaded = load_environment(name).warehouse
    assert isinstance(loaded, DuckDBWarehouse) and loaded.path == "elsewhere.duckdb"


@pytest.mark.usefixtures("prefect_api")
def test_an_environment_holding_a_copy_of_a_document_is_refused_at_load() -> None:
    # What the UI's edit form saves when a nested field is not picked again: values, no link.
    name = f"env-{uuid.uuid4().hex[:6]}"
    DuckDBWarehouse().save(name)
    ELTEnvironment(
        warehouse=DuckDBWarehouse.load(name), transform=DbtCoreTransform(), alerts=ConsoleAlerts()
    ).save(name)
    with pytest.raises(InvalidBlockDocumentError, match="holds a copy of its transform, alerts"):
        load_environment(name)


@pytest.mark.usefixtures("prefect_api")
def test_loading_an_environment_imports_no_other_integration_and_keeps_each_documents_type(
    private_key_pem: str,
) -> None:
    """Slow-ish (a fresh interpreter, ~10 s): which modules a load imports is per process."""
    from prefect_dbt.cloud import DbtCloudCredentials

    from blocks import DbtCloudTransform

    name = f"env-{uuid.uuid4().hex[:6]}"
    warehouse = SnowflakeWarehouse(account="myorg-myaccount", user="LOADER",
                                   private_key=private_key_pem, warehouse="LOADING",
                                   database="ANALYTICS_DB")  # fmt: skip
    credentials = DbtCloudCredentials(api_key="not-a-real-key", account_id=12)
    credentials.save(name)
    transform = DbtCloudTransform(credentials=DbtCloudCredentials.load(name), job_id=34)
    webhook = SlackWebhook(url="https://hooks.slack.com/services/T000/B000/x")
    webhook.save(name)
    alerts = SlackAlerts(webhook=SlackWebhook.load(name))
    for block in (warehouse, transform, alerts):
        block.save(name)
    ELTEnvironment(warehouse=SnowflakeWarehouse.load(name), transform=DbtCloudTransform.load(name),
                   alerts=SlackAlerts.load(name)).save(name)  # fmt: skip
    script = (
        "import sys\n"
        "from blocks import load_environment\n"
        f"environment = load_environment({name!r})\n"
        "print(type(environment.warehouse).__name__, type(environment.transform).__name__,\n"
        "      type(environment.alerts).__name__, environment.transform.credentials.account_id)\n"
        "print(sorted(m for m in ('prefect_kubernetes', 'prefect_docker', 'prefect_shell')\n"
        "             if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    types, imported = completed.stdout.splitlines()[:2]
    assert types == "SnowflakeWarehouse DbtCloudTransform SlackAlerts 12"
    # Prefect's lookup of a block type by slug imports every installed integration first.
    assert imported == "[]"


def test_a_document_of_the_wrong_type_for_its_role_is_refused_naming_the_role() -> None:
    from blocks.environment import role_type

    assert role_type("warehouse", "snowflake-warehouse") is SnowflakeWarehouse
    assert role_type("alerts", "console-alerts") is ConsoleAlerts
    with pytest.raises(ValueError, match=r"warehouse names a 'slack-alerts' document.*pick"):
        role_type("warehouse", "slack-alerts")


@pytest.mark.usefixtures("prefect_api")
def test_prefect_block_register_finds_the_installed_blocks_package() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"],
        cwd="/", env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr + completed.stdout


@pytest.mark.usefixtures("prefect_api")
def test_an_unknown_environment_says_how_to_create_it() -> None:
    with pytest.raises(ValueError, match=r"deployments/environments/qa.yaml"):
        load_environment("qa")


def test_environment_names_are_the_files() -> None:
    assert environment_names() == sorted(
        path.stem for path in (REPO_ROOT / "deployments/environments").glob("*.yaml")
    )


def test_migrated_dbt_cloud_credentials_keep_the_older_documents_domain_key_and_account() -> None:
    credentials = load_environment_declaration("prod").blocks["transform"].nested["credentials"]
    legacy = {"api_key": "dbtc_old", "account_id": 12, "domain": "emea.dbt.com", "job_id": 71}
    plan = plan_document(credentials, "prod", None, {}, fallback=legacy)
    assert plan.missing == ()
    assert dict(plan.values) == {"api_key": "dbtc_old", "account_id": 12, "domain": "emea.dbt.com"}
