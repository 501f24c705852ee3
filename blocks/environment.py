"""The one place that decides which block documents an environment (local, staging, prod) uses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound
from pydantic import Field, ValidationError, field_validator

from blocks._validation import BLOCK_REFERENCE_PATTERN
from blocks.alerts import AlertSink, ConsoleAlerts, SlackAlerts
from blocks.dbt_cloud import DbtCloudTransform
from blocks.dbt_core import DbtCoreTransform
from blocks.duckdb_warehouse import DuckDBWarehouse
from blocks.snowflake_warehouse import SnowflakeWarehouse
from blocks.warehouse import Warehouse

Transform = DbtCoreTransform | DbtCloudTransform
B = TypeVar("B", bound=Block)

LOCAL = "local"


class ELTEnvironment(Block):
    """Names the warehouse, transform and alert block documents one environment runs with."""

    _block_type_name = "ELT Environment"
    _logo_url = "https://images.ctfassets.net/gm98wzqotmnx/3WpHrJ9uQd9y3hMw1xfT5b/prefect-logo.png"  # type: ignore[assignment]
    _description = (
        "Which block documents an environment uses. Deployments pick an environment by name "
        "(local, staging, prod); switching warehouse, dbt or Slack is an edit here, not in code."
    )

    warehouse: str = Field(
        default="duckdb-warehouse/local",
        title="Warehouse block",
        description="`block-type/name` of the warehouse, e.g. `snowflake-warehouse/prod` "
        "or `duckdb-warehouse/local`.",
        json_schema_extra={"pattern": BLOCK_REFERENCE_PATTERN},
    )
    transform: str = Field(
        default="dbt-core-transform/local",
        title="Transform block",
        description="`block-type/name` of the dbt runner: `dbt-cloud-transform/prod` or "
        "`dbt-core-transform/local`.",
        json_schema_extra={"pattern": BLOCK_REFERENCE_PATTERN},
    )
    alerts: str = Field(
        default="console-alerts/local",
        title="Alerts block",
        description="`block-type/name` of where failure alerts go: `slack-alerts/prod` or "
        "`console-alerts/local`.",
        json_schema_extra={"pattern": BLOCK_REFERENCE_PATTERN},
    )

    @field_validator("warehouse", "transform", "alerts")
    @classmethod
    def _is_block_reference(cls, value: str, info: Any) -> str:
        if not re.fullmatch(BLOCK_REFERENCE_PATTERN, value):
            raise ValueError(
                f"{info.field_name} {value!r} must name a block document as `block-type/name`, "
                "e.g. `snowflake-warehouse/prod`"
            )
        return value

    def load_warehouse(self) -> Warehouse:
        return _load(self.warehouse, Warehouse, "warehouse")

    def load_transform(self) -> Transform:
        return _load(self.transform, (DbtCoreTransform, DbtCloudTransform), "transform")

    def load_alerts(self) -> AlertSink:
        return _load(self.alerts, AlertSink, "alerts")


def load_environment(name: str) -> ELTEnvironment:
    """The environment document `name`; `local` falls back to the built-in default if unsaved."""
    try:
        environment: ELTEnvironment = ELTEnvironment.load(name)  # type: ignore[assignment]
        return environment
    except ValueError as exc:
        if name == LOCAL and "Unable to find block document" in str(exc):
            return ELTEnvironment()
        raise ValueError(
            f"No ELT environment named {name!r}: create it with `make setup` "
            f"(or in the UI under Blocks → ELT Environment), or pick another environment"
        ) from exc


class InvalidBlockDocumentError(ValueError):
    """A saved block document holds values its block type refuses (e.g. typed into the UI)."""


def load_block(reference: str) -> Block:
    """Load `block-type/name`, turning invalid stored values into a message naming the fix."""
    try:
        block: Block = Block.load(reference, _sync=True)  # type: ignore[call-arg,assignment]
    except RuntimeError as exc:
        # Prefect wraps the block type's ValidationError in a RuntimeError.
        if not isinstance(exc.__cause__, ValidationError):
            raise
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.__cause__.errors()
        )
        raise InvalidBlockDocumentError(
            f"Block document {reference!r} has invalid values: {problems}. "
            "Fix them in the Prefect UI (Blocks) or rerun `make setup`."
        ) from exc
    return block


def _load(reference: str, expected: type[B] | tuple[type[Block], ...], role: str) -> Any:
    try:
        block = load_block(reference)
    except InvalidBlockDocumentError:
        raise
    except (ValueError, ObjectNotFound) as exc:
        fallback = _local_fallback(reference)
        if fallback is not None:
            return fallback
        raise ValueError(
            f"The environment's {role} block {reference!r} does not exist: create it "
            "(`make setup`, or in the UI) or point the environment at another document"
        ) from exc
    if not isinstance(block, expected):
        raise TypeError(f"The environment's {role} block {reference!r} is a {type(block).__name__}")
    return block


def _local_fallback(reference: str) -> Block | None:
    defaults: dict[str, Block] = {
        "duckdb-warehouse/local": DuckDBWarehouse(),
        "dbt-core-transform/local": DbtCoreTransform(),
        "console-alerts/local": ConsoleAlerts(),
    }
    return defaults.get(reference)


BLOCK_TYPES: tuple[type[Block], ...] = (
    DuckDBWarehouse, SnowflakeWarehouse, DbtCoreTransform, DbtCloudTransform, ConsoleAlerts,
    SlackAlerts, ELTEnvironment,
)  # fmt: skip


def register_block_types() -> list[str]:
    """Register every block type of this project with the current Prefect API; return slugs."""
    for block_type in BLOCK_TYPES:
        # _sync: callers may run inside an event loop (Playwright's sync API, notebooks).
        block_type.register_type_and_schema(_sync=True)  # type: ignore[call-arg]
    return [block_type.get_block_type_slug() for block_type in BLOCK_TYPES]


class MissingSettingError(ValueError):
    """An environment variable that the setup of a production environment needs is not set."""


def environment_blocks(name: str, environ: Mapping[str, str]) -> dict[str, Block]:
    """The block documents environment `name` uses, built from environment variables.

    Snowflake replaces DuckDB when SNOWFLAKE_ACCOUNT is set, dbt Cloud replaces dbt Core when
    DBT_CLOUD_JOB_ID is set, Slack replaces the console when SLACK_WEBHOOK_URL is set. Keys of the
    result are block-type slugs; every document is saved under the environment's name.
    """

    def need(*keys: str) -> dict[str, str]:
        missing = [key for key in keys if not environ.get(key)]
        if missing:
            raise MissingSettingError(
                f"environment {name!r}: set {', '.join(missing)} (see README → Production)"
            )
        return {key: environ[key] for key in keys}

    def optional(key: str, default: str = "") -> str:
        return environ.get(key) or default

    warehouse: Warehouse
    if environ.get("SNOWFLAKE_ACCOUNT"):
        settings = need("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_WAREHOUSE",
                        "SNOWFLAKE_DATABASE")  # fmt: skip
        uses_password = bool(environ.get("SNOWFLAKE_PASSWORD")) and not environ.get(
            "SNOWFLAKE_PRIVATE_KEY"
        )
        warehouse = SnowflakeWarehouse(
            account=settings["SNOWFLAKE_ACCOUNT"],
            user=settings["SNOWFLAKE_USER"],
            auth_method="password" if uses_password else "key_pair",
            private_key=optional("SNOWFLAKE_PRIVATE_KEY"),
            private_key_passphrase=optional("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
            password=optional("SNOWFLAKE_PASSWORD"),
            role=optional("SNOWFLAKE_ROLE"),
            warehouse=settings["SNOWFLAKE_WAREHOUSE"],
            database=settings["SNOWFLAKE_DATABASE"],
            raw_schema=optional("SNOWFLAKE_RAW_SCHEMA", "RAW"),
            transform_schema=optional("SNOWFLAKE_TRANSFORM_SCHEMA", "ANALYTICS"),
            query_tag=f"prefect-elt-{name}",
        )
    else:
        warehouse = DuckDBWarehouse(path=optional("ELT_DUCKDB_PATH", "data/warehouse.duckdb"))

    transform: Transform
    if environ.get("DBT_CLOUD_JOB_ID"):
        settings = need("DBT_CLOUD_API_KEY", "DBT_CLOUD_ACCOUNT_ID", "DBT_CLOUD_JOB_ID")
        transform = DbtCloudTransform(
            api_key=settings["DBT_CLOUD_API_KEY"],
            account_id=int(settings["DBT_CLOUD_ACCOUNT_ID"]),
            job_id=int(settings["DBT_CLOUD_JOB_ID"]),
            domain=optional("DBT_CLOUD_DOMAIN", "cloud.getdbt.com"),
        )
    else:
        transform = DbtCoreTransform()

    alerts: AlertSink
    ui_url = optional("ELT_PREFECT_UI_URL")
    if environ.get("SLACK_WEBHOOK_URL"):
        alerts = SlackAlerts(
            url=environ["SLACK_WEBHOOK_URL"],
            mention=optional("SLACK_MENTION"),
            environment_label=name,
            prefect_ui_url=ui_url,
        )
    else:
        alerts = ConsoleAlerts(environment_label=name, prefect_ui_url=ui_url)

    refs = {role: f"{block.get_block_type_slug()}/{name}"
            for role, block in (("warehouse", warehouse), ("transform", transform),
                                ("alerts", alerts))}  # fmt: skip
    return {
        warehouse.get_block_type_slug(): warehouse,
        transform.get_block_type_slug(): transform,
        alerts.get_block_type_slug(): alerts,
        ELTEnvironment.get_block_type_slug(): ELTEnvironment(**refs),
    }
