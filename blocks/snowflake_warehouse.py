"""Snowflake warehouse: prefect-snowflake's connector with one connection per `with`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import pandas as pd
import pyarrow as pa
from prefect import runtime
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from blocks._form import multiline_secret
from blocks._validation import (
    IDENTIFIER_PATTERN,
    SNOWFLAKE_ACCOUNT_PATTERN,
    check_identifier,
    check_not_the_mask,
    check_snowflake_account,
)
from blocks.warehouse import Dialect, TableData, Warehouse

if TYPE_CHECKING:
    # prefect-snowflake costs seconds to import (its SPCS worker): only Snowflake runs pay it.
    from prefect_snowflake import SnowflakeConnector, SnowflakeCredentials

PEM_HEADER = "-----BEGIN"
# The form's select shows these values as they are: words, not identifiers.
KEY_PAIR: Final = "key pair"
AuthMethod = Literal["key pair", "password"]


def private_key_problem(pem: str, passphrase: str) -> str:
    """Why the PEM key does not open with the passphrase, or '' when it does."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        # Whether it opens, not the RSA math: that check costs ~30 ms on every load of the
        # block, and the connector checks the key again when it signs in.
        load_pem_private_key(
            pem.encode(),
            passphrase.encode() if passphrase else None,
            unsafe_skip_rsa_key_validation=True,
        )
    except TypeError:  # cryptography's word for a passphrase missing, or one too many
        if passphrase:
            return "private_key_passphrase is set but private_key is not encrypted: clear it"
        return "private_key is encrypted: set private_key_passphrase to the key's passphrase"
    except ValueError:
        return (
            "private_key does not open with private_key_passphrase: check the passphrase, "
            "and that the PEM was pasted whole"
        )
    return ""


class SnowflakeWarehouse(Warehouse):
    """Snowflake account, credentials and location of the raw data, owning one connection."""

    _block_type_name = "Snowflake Warehouse"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/bd359de0b4be76c2254bd329fe3a267a1a3879c2-250x250.png"  # type: ignore[assignment]
    _documentation_url = "https://docs.snowflake.com/en/user-guide/key-pair-auth"  # type: ignore[assignment]
    _description = (
        "Snowflake connection settings for the ELT flows: key-pair (recommended) or password "
        "auth, the warehouse to run on, and where raw data lands. Used as a context manager "
        "that opens one connection shared by the tasks inside it."
    )

    dialect: ClassVar[Dialect] = "snowflake"
    dbt_target: ClassVar[str] = "snowflake"
    replace_copies_rows: ClassVar[bool] = True  # INSERT OVERWRITE

    # Form order: what must be filled first, then the credentials of each auth method, then
    # what has a default. No property has a schema default (see blocks/_form.py).
    account: str = Field(
        title="Account identifier",
        description="The part of the account URL before .snowflakecomputing.com, "
        "e.g. myorg-myaccount.",
        json_schema_extra={"pattern": SNOWFLAKE_ACCOUNT_PATTERN},
        examples=["myorg-myaccount"],
    )
    user: str = Field(
        title="User",
        description="Login name of the service user the flows connect as.",
        min_length=1,
    )
    warehouse: str = Field(
        title="Virtual warehouse",
        description="Compute warehouse that runs loads and queries, e.g. TRANSFORMING.",
        json_schema_extra={"pattern": IDENTIFIER_PATTERN},
    )
    database: str = Field(
        title="Database",
        description="Database that holds the raw and transformed schemas.",
        json_schema_extra={"pattern": IDENTIFIER_PATTERN},
    )
    auth_method: AuthMethod = Field(
        default=KEY_PAIR,
        title="Authentication",
        description="key pair (recommended) signs in with the private key below; password "
        "with the password. Empty: key pair.",
    )
    private_key: SecretStr = Field(
        default=SecretStr(""),
        title="Key pair: private key (PEM)",
        description="The user's private key in PEM format, BEGIN and END lines included. "
        "Required for key pair authentication.",
        json_schema_extra=multiline_secret,
    )
    private_key_passphrase: SecretStr = Field(
        default=SecretStr(""),
        title="Key pair: passphrase",
        description="Passphrase of an encrypted private key. Empty: none (an unencrypted key).",
    )
    password: SecretStr = Field(
        default=SecretStr(""),
        title="Password: password",
        description="The user's password. Required for password authentication only.",
    )
    role: str = Field(
        default="",
        title="Role",
        description="Role to use. Empty: the user's default role.",
        json_schema_extra={"pattern": r"^(|[A-Za-z_][A-Za-z0-9_$]*)$"},
    )
    raw_schema: str = Field(
        default="RAW",
        title="Raw schema",
        description="Schema the extract-load flow writes raw tables into. Empty: RAW.",
        json_schema_extra={"pattern": IDENTIFIER_PATTERN},
    )
    transform_schema: str = Field(
        default="ANALYTICS",
        title="Transform schema",
        description="Schema dbt builds models into. Empty: ANALYTICS.",
        json_schema_extra={"pattern": IDENTIFIER_PATTERN},
    )
    query_tag: str = Field(
        default="prefect-elt",
        title="Query tag",
        description="Prefix of the QUERY_TAG set on every session; the flow run name is "
        "appended so warehouse cost can be traced to a run. Empty: prefect-elt.",
        max_length=200,
    )

    _connector: SnowflakeConnector | None = PrivateAttr(default=None)

    @field_validator("auth_method", mode="before")
    @classmethod
    def _auth_method_as_shown(cls, value: Any) -> Any:
        # Documents and declarations of older versions say `key_pair`.
        return KEY_PAIR if value == "key_pair" else value

    @field_validator("account")
    @classmethod
    def _account_is_identifier(cls, value: str) -> str:
        return check_snowflake_account(value)

    @field_validator("warehouse", "database", "raw_schema", "transform_schema")
    @classmethod
    def _is_identifier(cls, value: str, info: Any) -> str:
        return check_identifier(value, info.field_name)

    @field_validator("private_key", "private_key_passphrase", "password")
    @classmethod
    def _secret_is_not_the_mask(cls, value: SecretStr, info: Any) -> SecretStr:
        check_not_the_mask(value.get_secret_value(), info.field_name)
        return value

    @field_validator("role")
    @classmethod
    def _role_is_identifier(cls, value: str) -> str:
        return check_identifier(value, "role") if value else value

    @model_validator(mode="after")
    def _credentials_match_auth_method(self) -> SnowflakeWarehouse:
        key = self.private_key.get_secret_value().strip()
        if self.auth_method == KEY_PAIR:
            if not key:
                raise ValueError(
                    "private_key is required when auth_method is 'key pair': paste the PEM key "
                    "(or choose auth_method 'password' and set password)"
                )
            if not key.startswith(PEM_HEADER):
                raise ValueError(
                    "private_key must be PEM text starting with `-----BEGIN ... PRIVATE KEY-----`"
                )
            problem = private_key_problem(key, self.private_key_passphrase.get_secret_value())
            if problem:
                raise ValueError(problem)
        elif not self.password.get_secret_value():
            raise ValueError(
                "password is required when auth_method is 'password' "
                "(or choose auth_method 'key pair' and set private_key)"
            )
        return self

    def credentials(self) -> SnowflakeCredentials:
        """prefect-snowflake credentials for the chosen auth method, with no unused secret."""
        from prefect_snowflake import SnowflakeCredentials

        auth: dict[str, Any]
        if self.auth_method == KEY_PAIR:
            auth = {"private_key": self.private_key.get_secret_value().encode()}
            if self.private_key_passphrase.get_secret_value():
                auth["private_key_passphrase"] = self.private_key_passphrase
        else:
            auth = {"password": self.password}
        if self.role:
            auth["role"] = self.role
        return SnowflakeCredentials(account=self.account, user=self.user, **auth)

    def connector(self) -> SnowflakeConnector:
        """prefect-snowflake connector scoped to the raw schema."""
        from prefect_snowflake import SnowflakeConnector

        return SnowflakeConnector(
            credentials=self.credentials(),
            database=self.database,
            warehouse=self.warehouse,
            schema=self.raw_schema,
        )

    def session_query_tag(self) -> str:
        """The query tag for this session: the prefix plus the current flow run's name."""
        run_name = runtime.flow_run.name
        return f"{self.query_tag}:{run_name}" if run_name else self.query_tag

    @property
    def is_open(self) -> bool:
        return self._connector is not None

    @property
    def schema_name(self) -> str:
        return self.raw_schema

    def _open(self) -> None:
        if self._connector is not None:
            return
        connector = self.connector()
        connector.get_connection(
            paramstyle="qmark", session_parameters={"QUERY_TAG": self.session_query_tag()}
        )
        self._connector = connector
        self._create_raw_schema()

    def _close(self) -> None:
        if self._connector is not None:
            connector, self._connector = self._connector, None
            connector.close()

    def _connection(self) -> Any:
        self._require_open()
        assert self._connector is not None
        return self._connector.get_connection()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self._connection().cursor() as cursor:
            cursor.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._connection().cursor() as cursor:
            cursor.execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()]

    def quote(self, identifier: str) -> str:
        # Snowflake stores an unquoted name in upper case, and so does the loader.
        return super().quote(identifier.upper())

    def bulk_load(self, table: str, data: TableData, *, temporary: bool = False) -> int:
        if isinstance(data, pa.RecordBatchReader):
            # One write_pandas per batch: memory stays bounded by the batch, not the stream.
            written = [self._write_pandas(table, batch.to_pandas(), temporary) for batch in data]
            if not written:
                # No batch: still create the table, from the stream's columns (zero rows).
                self._write_pandas(table, data.schema.empty_table().to_pandas(), temporary)
            return sum(written)
        frame = data.to_pandas() if isinstance(data, pa.Table | pa.RecordBatch) else data
        return self._write_pandas(table, frame, temporary)

    def _write_pandas(self, table: str, frame: pd.DataFrame, temporary: bool) -> int:
        # Looked up at call time so fakesnow's patch of pandas_tools applies in tests.
        from snowflake.connector import pandas_tools

        frame.columns = [str(column).upper() for column in frame.columns]
        _, _, rows, _ = pandas_tools.write_pandas(
            self._connection(),
            frame,
            check_identifier(table, "table").upper(),
            schema=self.raw_schema,
            auto_create_table=True,
            quote_identifiers=False,
            use_logical_type=True,
            # Session-private staging in the raw schema, dropped with the session.
            table_type="temp" if temporary else "",
        )
        return int(rows)

    def replace_table(self, table: str, staging: str) -> None:
        # DDL auto-commits in Snowflake; INSERT OVERWRITE is one atomic statement.
        target = self.qualified(table)
        self.execute(f"CREATE TABLE IF NOT EXISTS {target} LIKE {self.qualified(staging)}")
        self.execute(f"INSERT OVERWRITE INTO {target} SELECT * FROM {self.qualified(staging)}")

    def dbt_env(self) -> dict[str, str]:
        return {
            "ELT_SNOWFLAKE_ACCOUNT": self.account,
            "ELT_SNOWFLAKE_USER": self.user,
            "ELT_SNOWFLAKE_PASSWORD": (
                self.password.get_secret_value() if self.auth_method == "password" else ""
            ),
            "ELT_SNOWFLAKE_PRIVATE_KEY": (
                self.private_key.get_secret_value() if self.auth_method == KEY_PAIR else ""
            ),
            "ELT_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": self.private_key_passphrase.get_secret_value(),
            "ELT_SNOWFLAKE_ROLE": self.role,
            "ELT_SNOWFLAKE_WAREHOUSE": self.warehouse,
            "ELT_SNOWFLAKE_DATABASE": self.database,
            "ELT_SNOWFLAKE_QUERY_TAG": self.session_query_tag(),
            "ELT_RAW_SCHEMA": self.raw_schema,
            "ELT_TRANSFORM_SCHEMA": self.transform_schema,
        }
