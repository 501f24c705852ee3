"""How the project's block schemas are shaped for Prefect's V2 block forms (Prefect 3.8).

The V2 edit form, mounted when its lazy form module is already loaded (Edit right after Create,
Edit -> Cancel -> Edit, a second edit in one page session), writes each property's schema
`default` over the document's saved value (a property with a default and, at its first render,
no value gets the default queued; the queue is merged over the data once that arrives). So no
property the form shows carries a `default`: the block's field default applies at load instead.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block, schema_extra
from pydantic import ConfigDict


def without_form_defaults(schema: dict[str, Any], model: type[Block]) -> None:
    """Prefect's block schema extras, then no `default` on any property the form shows."""
    schema_extra(schema, model)
    for field_schema in schema.get("properties", {}).values():
        field_schema.pop("default", None)


# A project block's `model_config`: pydantic merges it with Block's own. A validation error
# never repeats its input: a document's values include its secrets, and errors reach the logs.
BLOCK_CONFIG = ConfigDict(json_schema_extra=without_form_defaults, hide_input_in_errors=True)


def multiline_secret(field_schema: dict[str, Any]) -> None:
    """Show a secret as a multi-line text box: the form's `password` input drops newlines."""
    field_schema.pop("format", None)
