"""Raw tables as SQL, rendered from their source declarations (for tests that build them by hand
and for checking the docs): the Arrow type of each column as DuckDB and Snowflake spell it."""

from __future__ import annotations

import pyarrow as pa

from pipeline.sources import Source


def sql_type(arrow_type: pa.DataType) -> str:
    """The SQL type the loader creates for a column of `arrow_type`."""
    checks = [
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_integer, "BIGINT"),
        (pa.types.is_floating, "DOUBLE"),
        (pa.types.is_timestamp, "TIMESTAMP"),
        (pa.types.is_string, "VARCHAR"),
        (pa.types.is_large_string, "VARCHAR"),
    ]
    for matches, sql in checks:
        if matches(arrow_type):
            return sql
    raise ValueError(f"no SQL type for Arrow {arrow_type}; add it to sql_type in {__name__}")


def column_definitions(source: Source) -> list[str]:
    """`name TYPE` for each declared column, in order (the loader adds `_loaded_at` after)."""
    return [f"{field.name} {sql_type(field.type)}" for field in source.schema]


def column_ddl(source: Source) -> str:
    """The declared columns as the body of a CREATE TABLE, e.g. `id BIGINT, name VARCHAR`."""
    return ", ".join(column_definitions(source))
