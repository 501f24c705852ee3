"""One place decides an environment's blocks; setup creates them idempotently from env vars."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from prefect.settings import PREFECT_API_URL

from blocks import (
    ConsoleAlerts,
    DbtCloudTransform,
    DbtCoreTransform,
    DuckDBWarehouse,
    ELTEnvironment,
    SlackAlerts,
    SnowflakeWarehouse,
    load_environment,
)
from blocks.environment import MissingSettingError, environment_blocks
from tests.conftest import REPO_ROOT

BLOCK_TYPES = [
    "snowflake-warehouse", "duckdb-warehouse", "dbt-cloud-transform", "dbt-core-transform",
    "slack-alerts", "console-alerts", "elt-environment",
]  # fmt: skip
PRODUCTION = {
    "SNOWFLAKE_ACCOUNT": "myorg-prod",
    "SNOWFLAKE_USER": "ELT_LOADER",
    "SNOWFLAKE_WAREHOUSE": "LOADING",
    "SNOWFLAKE_DATABASE": "RAW_DB",
    "SNOWFLAKE_ROLE": "LOADER",
    "DBT_CLOUD_API_KEY": "dbtc_secret",
    "DBT_CLOUD_ACCOUNT_ID": "70",
    "DBT_CLOUD_JOB_ID": "71",
    "DBT_CLOUD_DOMAIN": "emea.dbt.com",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/secret",
    "SLACK_MENTION": "<!here>",
}


def test_an_environment_with_no_settings_is_the_embedded_default() -> None:
    documents = environment_blocks("local", {})
    assert [type(block) for block in documents.values()] == [
        DuckDBWarehouse, DbtCoreTransform, ConsoleAlerts, ELTEnvironment,
    ]  # fmt: skip
    assert documents["elt-environment"] == ELTEnvironment(
        warehouse="duckdb-warehouse/local",
        transform="dbt-core-transform/local",
        alerts="console-alerts/local",
    )


def test_production_settings_choose_snowflake_key_pair_dbt_cloud_and_slack(
    private_key_pem: str,
) -> None:
    documents = environment_blocks("prod", {**PRODUCTION, "SNOWFLAKE_PRIVATE_KEY": private_key_pem})
    warehouse = documents["snowflake-warehouse"]
    assert isinstance(warehouse, SnowflakeWarehouse)
    assert warehouse.auth_method == "key_pair"
    assert warehouse.password.get_secret_value() == ""
    assert warehouse.role == "LOADER"
    transform = documents["dbt-cloud-transform"]
    assert isinstance(transform, DbtCloudTransform)
    assert (transform.account_id, transform.job_id, transform.domain) == (70, 71, "emea.dbt.com")
    alerts = documents["slack-alerts"]
    assert isinstance(alerts, SlackAlerts)
    assert (alerts.environment_label, alerts.mention) == ("prod", "<!here>")
    assert documents["elt-environment"].model_dump(exclude={"block_type_slug"}) == {
        "warehouse": "snowflake-warehouse/prod",
        "transform": "dbt-cloud-transform/prod",
        "alerts": "slack-alerts/prod",
    }


def test_a_partial_production_setup_names_every_missing_variable() -> None:
    with pytest.raises(MissingSettingError, match="SNOWFLAKE_USER, SNOWFLAKE_WAREHOUSE"):
        environment_blocks("prod", {"SNOWFLAKE_ACCOUNT": "myorg-prod"})
    with pytest.raises(MissingSettingError, match="DBT_CLOUD_API_KEY, DBT_CLOUD_ACCOUNT_ID"):
        environment_blocks("prod", {"DBT_CLOUD_JOB_ID": "3"})


@pytest.mark.usefixtures("prefect_api")
def test_setup_twice_registers_blocks_and_leaves_one_document_of_each() -> None:
    from prefect.client.orchestration import get_client

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    for _ in range(2):
        completed = subprocess.run(
            [sys.executable, "-m", "deployments.setup", "--environment", "local"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
    assert "duckdb-warehouse/local" in completed.stdout
    with get_client(sync_client=True) as client:
        names = [(d.block_type.slug, d.name) for d in client.read_block_documents()]  # type: ignore[union-attr]
    assert names.count(("elt-environment", "local")) == 1
    environment = load_environment("local")
    assert isinstance(environment.load_warehouse(), DuckDBWarehouse)
    assert isinstance(environment.load_transform(), DbtCoreTransform)
    assert isinstance(environment.load_alerts(), ConsoleAlerts)


@pytest.mark.usefixtures("prefect_api")
def test_prefect_block_register_finds_the_installed_blocks_package() -> None:
    from prefect.client.orchestration import get_client

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    completed = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"],
        cwd="/", env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Successfully registered 7 blocks" in completed.stdout
    with get_client(sync_client=True) as client:
        for slug in BLOCK_TYPES:
            assert client.read_block_type_by_slug(slug).slug == slug


@pytest.mark.usefixtures("prefect_api")
def test_an_unknown_environment_says_how_to_create_it() -> None:
    with pytest.raises(ValueError, match=r"No ELT environment named 'qa'.*make setup"):
        load_environment("qa")
