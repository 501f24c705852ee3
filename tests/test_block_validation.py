"""Block fields fail at save time with a message naming the field; secrets never show."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prefect_dbt.cloud import DbtCloudCredentials
from prefect_slack import SlackWebhook
from pydantic import ValidationError

from blocks import (
    ConsoleAlerts,
    DbtCloudTransform,
    DbtCoreTransform,
    DuckDBWarehouse,
    ELTEnvironment,
    SlackAlerts,
    SnowflakeWarehouse,
)
from blocks.alerts import webhook_url_problem
from blocks.environment import InvalidBlockDocumentError, load_block

SECRET = "s3cr3t-value-never-shown"


def snowflake(**overrides: Any) -> SnowflakeWarehouse:
    fields: dict[str, Any] = {
        "account": "myorg-myaccount",
        "user": "LOADER",
        "auth_method": "password",
        "password": SECRET,
        "warehouse": "LOADING",
        "database": "ANALYTICS_DB",
    }
    return SnowflakeWarehouse(**{**fields, **overrides})


def dbt_cloud_credentials(**overrides: Any) -> DbtCloudCredentials:
    fields: dict[str, Any] = {"api_key": SECRET, "account_id": 12}
    return DbtCloudCredentials(**{**fields, **overrides})


def dbt_cloud(credentials: dict[str, Any] | None = None, **overrides: Any) -> DbtCloudTransform:
    fields: dict[str, Any] = {
        "credentials": dbt_cloud_credentials(**(credentials or {})),
        "job_id": 34,
    }
    return DbtCloudTransform(**{**fields, **overrides})


def error_text(build: Any, **fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        build(**fields)
    return str(caught.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"account": "https://myorg-myaccount.snowflakecomputing.com"}, "looks like a URL"),
        ({"account": "my org!"}, "not a Snowflake account identifier"),
        ({"warehouse": "LOADING; drop table x"}, "warehouse"),
        ({"database": "1db"}, "database"),
        ({"raw_schema": "raw-data"}, "raw_schema"),
        ({"role": "SYS ADMIN"}, "role"),
        ({"password": ""}, "password is required when auth_method is 'password'"),
        ({"auth_method": "key pair"}, "private_key is required when auth_method is 'key pair'"),
        ({"auth_method": "key_pair", "private_key": "not a key"}, "PEM"),
        ({"auth_method": "oauth"}, "auth_method"),
    ],
)
def test_snowflake_warehouse_rejects_bad_field_naming_it(
    fields: dict[str, Any], expected: str
) -> None:
    assert expected in error_text(snowflake, **fields)


@pytest.mark.parametrize(
    "account", ["myorg-myaccount", "xy12345", "xy12345.us-east-2.aws", "MYORG-MY_ACCOUNT"]
)
def test_snowflake_warehouse_accepts_documented_account_identifiers(account: str) -> None:
    assert snowflake(account=account).account == account


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"credentials": {"account_id": 0}}, "credentials.account_id 0 must be the number"),
        ({"credentials": {"domain": "https://emea.dbt.com"}}, "without `https://`"),
        ({"credentials": {"domain": "emea.dbt.com/api"}}, "credentials.domain"),
        ({"job_id": -1}, "job_id"),
        ({"timeout_seconds": 5}, "timeout_seconds"),
        ({"poll_interval_seconds": 0}, "poll_interval_seconds"),
        ({"failed_steps_retries": 9}, "failed_steps_retries"),
        ({"artifacts": ["run_results"]}, "not artifact paths"),
    ],
)
def test_dbt_cloud_transform_rejects_bad_field_naming_it(
    fields: dict[str, Any], expected: str
) -> None:
    assert expected in error_text(dbt_cloud, **fields)


def test_dbt_cloud_transform_uses_its_prefect_dbt_credentials_with_a_regional_domain() -> None:
    block = dbt_cloud(credentials={"domain": "emea.dbt.com"})
    assert not isinstance(block, DbtCloudCredentials)
    client = block.credentials.get_administrative_client()
    assert str(client._admin_client.base_url) == "https://emea.dbt.com/api/v2/accounts/12/"


def test_dbt_cloud_transform_shows_its_credentials_as_a_block_document_picker() -> None:
    schema = DbtCloudTransform.model_json_schema()
    credentials = schema["properties"]["credentials"]
    assert credentials["title"] == "dbt Cloud credentials"
    reference = credentials.get("$ref") or credentials["allOf"][0]["$ref"]
    nested = schema["definitions"][reference.rsplit("/", 1)[-1]]
    assert nested["block_type_slug"] == "dbt-cloud-credentials"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"command": "dbt build"}, "must start with one of"),
        ({"command": "deps"}, "must start with one of"),
        ({"threads": 0}, "threads"),
        ({"target": "prod target"}, "target"),
    ],
)
def test_dbt_core_transform_rejects_bad_field_naming_it(
    fields: dict[str, Any], expected: str
) -> None:
    assert expected in error_text(DbtCoreTransform, **fields)


def test_dbt_core_transform_builds_cli_arguments_from_its_fields() -> None:
    block = DbtCoreTransform(command="build --select marts+", threads=2)
    assert block.command_args() == [
        "build", "--select", "marts+", "--project-dir", "dbt", "--profiles-dir", "dbt",
        "--threads", "2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "fields", "expected"),
    [
        (DuckDBWarehouse, {"raw_schema": "raw data"}, "raw_schema"),
        (DuckDBWarehouse, {"memory_limit": "2"}, "memory_limit"),
        (SlackAlerts, {"webhook": SlackWebhook(url="hooks.slack.com/x")}, "webhook url must be"),
        (
            SlackAlerts,
            {"webhook": SlackWebhook(url="http://hooks.slack.com/x")},
            "webhook url must start with https://",
        ),
        (
            SlackAlerts,
            {"webhook": SlackWebhook(url="https://hooks.slack.com/x"), "mention": "@here"},
            "mention",
        ),
        (ConsoleAlerts, {"prefect_ui_url": "localhost:4200"}, "prefect_ui_url"),
        (ELTEnvironment, {"warehouse": "duckdb-warehouse/local"}, "warehouse"),
    ],
)
def test_blocks_reject_bad_fields_naming_them(
    build: Any, fields: dict[str, Any], expected: str
) -> None:
    assert expected in error_text(build, **fields)


@pytest.mark.parametrize(
    "block",
    [
        snowflake(),
        dbt_cloud(),
        SlackAlerts(webhook=SlackWebhook(url=f"https://hooks.slack.com/services/{SECRET}")),
    ],
    ids=["snowflake", "dbt-cloud", "slack"],
)
def test_secrets_are_masked_in_repr_str_and_logs(
    block: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger("test").warning("block: %r %s", block, block)
    assert SECRET not in repr(block)
    assert SECRET not in str(block)
    assert SECRET not in caplog.text
    assert "**********" in repr(block)


def test_key_pair_auth_without_password_builds_a_connection_config(private_key_pem: str) -> None:
    block = snowflake(auth_method="key_pair", password="", private_key=private_key_pem)
    credentials = block.credentials()
    assert credentials.password is None
    der = credentials.resolve_private_key()
    assert der is not None and der[:1] == b"\x30"  # DER SEQUENCE


def test_encrypted_key_pair_uses_its_passphrase(encrypted_private_key_pem: tuple[str, str]) -> None:
    pem, passphrase = encrypted_private_key_pem
    block = snowflake(
        auth_method="key_pair", password="", private_key=pem, private_key_passphrase=passphrase
    )
    assert block.credentials().resolve_private_key() is not None


@pytest.mark.parametrize(
    ("encrypted", "passphrase", "expected"),
    [
        (True, "", "private_key is encrypted: set private_key_passphrase"),
        (True, "not-the-passphrase", "does not open with private_key_passphrase"),
        (False, "a-passphrase", "private_key_passphrase is set but private_key is not encrypted"),
    ],
    ids=["passphrase missing", "passphrase wrong", "passphrase for a plain key"],
)
def test_a_private_key_that_does_not_open_with_its_passphrase_is_refused_at_load(
    private_key_pem: str,
    encrypted_private_key_pem: tuple[str, str],
    encrypted: bool,
    passphrase: str,
    expected: str,
) -> None:
    """A stale edit form can put an empty passphrase back: the load says so, not the run."""
    pem = encrypted_private_key_pem[0] if encrypted else private_key_pem
    message = error_text(
        snowflake, auth_method="key pair", private_key=pem, private_key_passphrase=passphrase
    )
    assert expected in message
    if passphrase:  # pydantic would show the document's values (secrets too) after the message
        assert passphrase not in message and "BEGIN" not in message


def test_password_auth_does_not_send_an_unused_private_key(private_key_pem: str) -> None:
    credentials = snowflake(private_key=private_key_pem).credentials()
    assert credentials.private_key is None
    assert credentials.password is not None


@pytest.mark.usefixtures("prefect_api")
def test_saved_secrets_are_obfuscated_in_the_api_response(private_key_pem: str) -> None:
    from prefect.client.orchestration import get_client

    snowflake(auth_method="key_pair", password="", private_key=private_key_pem).save(
        "masked-check", overwrite=True
    )
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(
            "masked-check", "snowflake-warehouse", include_secrets=False
        )
    assert document.data["private_key"] == "********"
    assert "PRIVATE KEY" not in str(document.data)
    loaded = SnowflakeWarehouse.load("masked-check")
    assert loaded.private_key.get_secret_value() == private_key_pem  # type: ignore[attr-defined]


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(
    ("first_save", "expected"),
    [
        ("changed", "kept"),  # Prefect's server keeps a stored secret when its mask comes back
        ("cleared", "password holds the Prefect UI's mask"),  # the mask itself, over none
        ("set", "password is required"),  # the stale form had none to send
    ],
)
def test_a_stale_form_never_leaves_a_secret_a_run_would_use_unnoticed(
    first_save: str, expected: str
) -> None:
    """A UI edit form filled before a save sends back every value it showed, a secret as its
    mask (or nothing, where none was stored): the secret is kept or the load refuses it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate

    name = f"stale-secret-{first_save}"
    snowflake().save(name, overwrite=True)
    with get_client(sync_client=True) as client:
        stored = client.read_block_document_by_name(name, "snowflake-warehouse")
        if first_save == "set":  # as the form stores an empty secret: no value at all
            stored.data.pop("password")
            client.update_block_document(
                stored.id, BlockDocumentUpdate(data=stored.data, merge_existing_data=False)
            )
        stale = client.read_block_document_by_name(
            name, "snowflake-warehouse", include_secrets=False
        ).data
        first = {k: v for k, v in stored.data.items() if k != "password"}
        if first_save != "cleared":
            first["password"] = "n3w-s3cr3t" if first_save == "changed" else SECRET
        for data in (first, {**stale, "role": "TRANSFORMER"}):  # the save, then the stale one
            client.update_block_document(
                stored.id, BlockDocumentUpdate(data=data, merge_existing_data=False)
            )
    if expected == "kept":
        loaded = SnowflakeWarehouse.load(name)
        assert loaded.password.get_secret_value() == "n3w-s3cr3t"  # type: ignore[attr-defined]
        assert loaded.role == "TRANSFORMER"  # type: ignore[attr-defined]
    else:
        with pytest.raises(InvalidBlockDocumentError, match=expected):
            load_block(f"snowflake-warehouse/{name}")


@pytest.mark.parametrize(
    ("build", "fields"),
    [
        (SlackAlerts, {"webhook": SlackWebhook(url="********")}),
        (
            DbtCloudTransform,
            {"credentials": dbt_cloud_credentials(api_key="********"), "job_id": 3},
        ),
    ],
    ids=["slack-webhook", "dbt-cloud-credentials"],
)
def test_a_secret_the_ui_form_saved_as_its_mask_is_refused_naming_the_cause_and_fix(
    build: Any, fields: dict[str, Any]
) -> None:
    message = error_text(build, **fields)
    assert "mask ********" in message
    assert "Pick the" in message and "rerun setup" in message


@pytest.mark.parametrize("field", ["password", "private_key_passphrase", "private_key"])
def test_a_snowflake_secret_holding_the_ui_mask_is_refused_naming_the_field_and_fix(
    field: str,
) -> None:
    """The server keeps a stored secret when a stale form sends the mask, except over none."""
    auth = {"auth_method": "key pair", "private_key": "-----BEGIN PRIVATE KEY-----\nx"}
    fields = {**({} if field == "password" else auth), field: "********"}
    with pytest.raises(ValidationError) as caught:
        snowflake(**fields)
    message = str(caught.value)
    assert f"{field} holds the Prefect UI's mask ********" in message
    assert "Type the secret again" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.slack.com/services/T0/B0/abc", ""),
        ("http://hooks.slack.com/services/T0/B0/abc", "must start with https://"),
        ("HTTP://hooks.slack.com/services/T0/B0/abc", "must be the webhook URL"),
        ("http://localhost.example.com/hook", "must start with https://"),
        ("http://127.0.0.1.example.com/hook", "must start with https://"),
        ("http://127.0.0.1:8123/services/T0/B0/abc", ""),  # a stand-in on this machine
        ("http://localhost/hook", ""),
        ("http://[::1]:9000/hook", ""),
        ("hooks.slack.com/services/T0/B0/abc", "must be the webhook URL"),
        ("", "must be the webhook URL"),
    ],
)
def test_a_slack_webhook_url_must_be_https_and_the_message_never_shows_it(
    url: str, expected: str
) -> None:
    problem = webhook_url_problem(url)
    assert (expected in problem) if expected else problem == ""
    assert not url or url not in problem
