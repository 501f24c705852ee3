"""Driving Prefect 3.8's V2 block forms: picking a saved document for a nested block field.

A field typed as one block type (`webhook: SlackWebhook`) renders, under its label, the block
type's logo, a "Select a block" combobox listing that type's saved (non-anonymous) documents,
and an "Add" button that creates a new one in a dialog. The combobox is shown only when at least
one document of the type exists. A union of block types (`DuckDBWarehouse | SnowflakeWarehouse`,
JSON schema `anyOf` of `$ref`s) renders one tab per member, titled with the member's schema title
(the class name), and the active tab holds that type's combobox. Picking stores a reference
(`{"$ref": {"block_document_id": ...}}`), so `Block.load` returns the picked document.

Every combobox is named "Select a block", so a field is found from its label: the label's
nearest enclosing div that has a fieldset child holds the field's control.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from prefect.blocks.core import Block


def block_field(page: Any, label: str) -> Any:
    """The control of the form field titled `label` (its fieldset)."""
    title = page.locator("label").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return title.locator("xpath=ancestor::div[fieldset][1]/fieldset[1]")


def union_tab_title(block_type: type[Block]) -> str:
    """The tab a union field shows for `block_type`: the title of its schema definition."""
    return str(block_type.model_json_schema().get("title", block_type.__name__))


def pick_document(
    page: Any, field_label: str, document_name: str, block_type: type[Block] | None = None
) -> None:
    """Pick the saved document `document_name` in the nested block field `field_label`.

    For a union of block types, pass the member `block_type` whose tab lists the document.
    """
    field = block_field(page, field_label)
    if block_type is not None:
        tab = field.get_by_role("tab", name=union_tab_title(block_type), exact=True)
        tab.click()
        expect(tab).to_have_attribute("aria-selected", "true")
    picker = field.get_by_role("button", name="Select a block")
    picker.click()
    # The list opens in a popover outside the form.
    page.get_by_role("option", name=document_name, exact=True).click()
    expect(picker).to_have_text(document_name)
