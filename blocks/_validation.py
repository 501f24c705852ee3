"""Field checks shared by the blocks: each raises a message naming what is expected."""

from __future__ import annotations

import re

# Unquoted Snowflake/DuckDB identifiers; quoted ones are legal but a footgun in config.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]*$"
# An account identifier as Snowflake documents it: `orgname-accountname`, or a legacy
# locator with optional region and cloud (`xy12345`, `xy12345.us-east-2.aws`).
SNOWFLAKE_ACCOUNT_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*([-_][A-Za-z0-9_]+)*(\.[A-Za-z0-9-]+){0,3}$"
BLOCK_REFERENCE_PATTERN = r"^[a-z0-9-]+/[A-Za-z0-9_.-]+$"


def check_identifier(value: str, what: str) -> str:
    """Return `value` if it is an unquoted SQL identifier, else explain the rule."""
    if not re.fullmatch(IDENTIFIER_PATTERN, value):
        raise ValueError(
            f"{what} {value!r} is not a plain SQL identifier: use letters, digits, `_` or `$`, "
            "starting with a letter or `_` (for example ANALYTICS or raw_data)"
        )
    return value


def check_snowflake_account(value: str) -> str:
    """Return the account identifier, or say how to read it off the account URL."""
    if "://" in value or "snowflakecomputing.com" in value:
        raise ValueError(
            f"account {value!r} looks like a URL: give only the account identifier, the part "
            "before `.snowflakecomputing.com` (for example `myorg-myaccount`)"
        )
    if not re.fullmatch(SNOWFLAKE_ACCOUNT_PATTERN, value):
        raise ValueError(
            f"account {value!r} is not a Snowflake account identifier: expected "
            "`orgname-accountname` (for example `myorg-myaccount`) or a legacy locator "
            "such as `xy12345.us-east-2.aws`"
        )
    return value


# What the Prefect UI shows for a secret. The V2 edit form (Prefect 3.8) saves a nested document
# it was not asked to change as a copy of what it shows instead of a link to the document.
MASKED_SECRET = "********"


def check_not_a_masked_copy(secret: str, field: str, document_type: str) -> None:
    """Refuse a secret that is the UI's mask: name the edit-form cause and both fixes."""
    if secret == MASKED_SECRET:
        raise ValueError(
            f"{field} holds the Prefect UI's mask ******** instead of a link to its "
            f"{document_type} document: the UI's edit form saves an untouched nested field "
            f"that way. Pick the {document_type} document again in the field (or edit in the "
            "legacy UI), or rerun setup, which links it again"
        )


def check_not_the_mask(secret: str, field: str) -> None:
    """Refuse a secret that is the UI's mask: Prefect's server keeps the stored secret when a form
    sends the mask back, but stores the mask itself where the document held no value."""
    if secret == MASKED_SECRET:
        raise ValueError(
            f"{field} holds the Prefect UI's mask ******** instead of a secret: an edit form "
            "filled before the secret was cleared sent the mask back. Type the secret again "
            "(or clear the field) and save"
        )
