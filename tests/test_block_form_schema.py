"""The block schemas the Prefect UI's forms render: nothing the edit form could reset, and forms
a person can fill in order (no server needed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prefect.blocks.core import Block

from blocks import SnowflakeWarehouse
from blocks.environment import BLOCK_TYPES, InvalidBlockDocumentError, refuse_copied_documents

SCHEMAS = {block_type.__name__: block_type.model_json_schema() for block_type in BLOCK_TYPES}


def project_schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    """Each project block type's schema, and those of the project types nested in it."""
    names = {block_type.__name__ for block_type in BLOCK_TYPES}
    for name, schema in SCHEMAS.items():
        yield name, schema
        for nested_name, nested in schema.get("definitions", {}).items():
            if nested_name in names:
                yield f"{name}.{nested_name}", nested


@pytest.mark.parametrize(("name", "schema"), list(project_schemas()))
def test_no_form_field_has_a_schema_default_the_edit_form_could_write_back(
    name: str, schema: dict[str, Any]
) -> None:
    # Prefect 3.8's V2 edit form, mounted a second time, writes a property's `default` over
    # the saved value (blocks/_form.py): defaults apply at load, never through the form.
    assert {key for key, field in schema["properties"].items() if "default" in field} == set()


@pytest.mark.parametrize("block_type", BLOCK_TYPES, ids=lambda t: t.__name__)
def test_a_field_left_empty_in_the_form_takes_its_default_at_load(
    block_type: type[Block],
) -> None:
    # What the form omits is what a person left empty: the field's own default, named in its
    # help, applies when the document loads, or the load refuses it when it is required.
    for key, field in block_type.model_fields.items():
        if not field.is_required():
            help_text = str(field.description)
            assert any(says in help_text for says in ("Empty:", "Not set:", "Required for")), key


@pytest.mark.parametrize(("name", "schema"), SCHEMAS.items())
def test_what_must_be_filled_comes_first_in_the_form(name: str, schema: dict[str, Any]) -> None:
    order = list(schema["properties"])
    required = [key for key in order if key in schema.get("required", [])]
    assert order[: len(required)] == required


@pytest.mark.parametrize(("name", "schema"), SCHEMAS.items())
def test_help_texts_read_as_plain_text_in_the_form(name: str, schema: dict[str, Any]) -> None:
    # The form shows descriptions as they are: Markdown backticks would show literally.
    texts = [schema.get("description", "")]
    texts += [field.get("description", "") for field in schema["properties"].values()]
    assert [text for text in texts if "`" in text] == []


@pytest.mark.parametrize("block_type", BLOCK_TYPES, ids=lambda t: t.__name__)
def test_every_block_type_links_its_documentation(block_type: type[Block]) -> None:
    assert str(block_type._documentation_url).startswith("https://")


def test_the_snowflake_private_key_is_a_multi_line_secret_grouped_with_its_auth_method() -> None:
    schema = SCHEMAS["SnowflakeWarehouse"]
    key = schema["properties"]["private_key"]
    # No `password` format: the form renders a text area, which keeps the PEM's newlines.
    assert "format" not in key and "private_key" in schema["secret_fields"]
    titles = [field["title"] for field in schema["properties"].values()]
    auth = titles.index("Authentication")
    assert titles[auth + 1 : auth + 4] == [
        "Key pair: private key (PEM)", "Key pair: passphrase", "Password: password",
    ]  # fmt: skip
    # The select shows enum values as they are: words a person reads.
    assert schema["properties"]["auth_method"]["enum"] == ["key pair", "password"]


def test_an_older_documents_key_pair_auth_method_still_loads(private_key_pem: str) -> None:
    warehouse = SnowflakeWarehouse(
        account="myorg-myaccount", user="U", warehouse="W", database="D",
        auth_method="key_pair", private_key=private_key_pem,  # type: ignore[arg-type]
    )  # fmt: skip
    assert warehouse.auth_method == "key pair"
    assert warehouse.credentials().resolve_private_key() is not None


def test_an_environment_holding_a_copy_instead_of_a_link_is_refused_naming_field_and_fix() -> None:
    data = {"warehouse": {"path": "x.duckdb"}, "transform": {}, "alerts": {}}
    linked = {"transform": {"block_document": {}}, "alerts": {"block_document": {}}}
    with pytest.raises(InvalidBlockDocumentError) as refused:
        refuse_copied_documents("prod", data, linked)
    message = str(refused.value)
    assert "'prod' holds a copy of its warehouse" in message
    assert "pick its warehouse document again" in message and "deployments.setup" in message
    # Linked documents, and older text references (setup migrates those), pass.
    refuse_copied_documents("prod", data, {**linked, "warehouse": {"block_document": {}}})
    refuse_copied_documents("prod", {**data, "warehouse": "duckdb-warehouse/prod"}, linked)
