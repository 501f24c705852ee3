"""Block types of this project; `prefect block register -m blocks` registers them all."""

from blocks.alerts import Alert, AlertSink, ConsoleAlerts, SlackAlerts
from blocks.dbt_cloud import DbtCloudTransform
from blocks.dbt_core import DbtCoreTransform
from blocks.duckdb_warehouse import DuckDBWarehouse
from blocks.environment import ELTEnvironment, load_environment
from blocks.snowflake_warehouse import SnowflakeWarehouse
from blocks.warehouse import Warehouse, WarehouseNotOpenError

__all__ = [
    "Alert",
    "AlertSink",
    "ConsoleAlerts",
    "DbtCloudTransform",
    "DbtCoreTransform",
    "DuckDBWarehouse",
    "ELTEnvironment",
    "SlackAlerts",
    "SnowflakeWarehouse",
    "Warehouse",
    "WarehouseNotOpenError",
    "load_environment",
]
