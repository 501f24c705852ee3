"""Prefect 3.8.8's V2 UI fills a block's edit form from its own copy of the document, which can
predate the last save: saving that form writes the older values back (issue #15).

How (`prefect/server/ui-v2/assets`): the block page and the edit page read the TanStack Query
entry `["block-documents", "details", id]`; their route loaders return a cached entry as it is
(`ensureQueryData`) and refresh it in the background; the form takes its values from the entry
(and again from each refreshed one). A save (`PATCH`, `merge_existing_data: false`, every value
of the form) only marks the entry stale and navigates to the block page, which shows the copy
from before the save until the refresh lands. A refresh the server fails (503 when its SQLite is
busy) is retried 3 times, then given up without any error shown ("Block updated successfully"
stays the last word); a slow one keeps the older copy as long as it takes.

The specs make the refresh fail or hang with request interception, then show what a person sees
and what README's "Editing blocks in the UI" tells them to do: wait until the block's page shows
what was just saved, and reload the page when it does not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import expect

from tests.ui.test_block_forms import (
    SESSION_MARK,
    create,
    edit,
    expect_page_shows_saved,
    load,
    open_edit_form,
    registered_block_types,  # noqa: F401  (the module fixture that registers the block types)
    save,
    shown_value,
    unique,
)

SLUG = "duckdb-warehouse"
CREATED = {
    "Database file (Optional)": "data/a.duckdb",
    "Raw schema (Optional)": "landing",
    "Transform schema (Optional)": "marts",
}
FIRST_EDIT = {"Memory limit (Optional)": "2GB"}
MEMORY_LIMIT = "Memory limit (Optional)"


@contextmanager
def refreshes_after_a_save(page: Any, answer: str) -> Iterator[Callable[[], None]]:
    """From the next save of the document shown on, make the UI's requests for that document
    fail with 503 (`answer="503"`, a busy server) or hang (`answer="hang"`, a slow one).

    Yields a function that lets the server answer again (releasing any hung request)."""
    document_id = page.url.split("?")[0].rsplit("/", 1)[-1]
    state = {"saved": False, "answering": False}
    hung: list[Any] = []

    def note_save(request: Any) -> None:
        # The refresh is sent after the save's response: requests before it are answered.
        if request.method == "PATCH" and document_id in request.url:
            state["saved"] = True

    def intercept(route: Any) -> None:
        if route.request.method != "GET" or not state["saved"] or state["answering"]:
            route.fallback()
        elif answer == "hang":
            hung.append(route)
        else:
            route.fulfill(
                status=503,
                content_type="application/json",
                body='{"exception_message": "Service Unavailable"}',
            )

    def answer_again() -> None:
        state["answering"] = True
        while hung:
            hung.pop().fallback()

    page.on("request", note_save)
    page.route(re.compile(rf"/api/block_documents/{document_id}(\?.*)?$"), intercept)
    try:
        yield answer_again
    finally:
        answer_again()


def memory_limit_in_form(page: Any) -> str:
    return str(page.get_by_label(MEMORY_LIMIT, exact=True).input_value())


def test_an_edit_saved_while_the_ui_could_not_refresh_the_block_writes_the_older_values_back(
    page: Any, prefect_api: str
) -> None:
    # Prefect's behaviour, not the project's: this spec fails once a Prefect upgrade refreshes
    # the form's copy before it can be saved (then README's rule and this file can go).
    name = unique("stale")
    create(page, prefect_api, SLUG, name, CREATED)
    with refreshes_after_a_save(page, "503"):
        open_edit_form(page)
        page.get_by_label(MEMORY_LIMIT, exact=True).fill("2GB")
        save(page, "PATCH")
        assert load(SLUG, name).memory_limit == "2GB"
        # Past the UI's 3 retries (1 + 2 + 4 s): it has given up, and says nothing.
        page.wait_for_timeout(9_000)
        assert shown_value(page, "Memory limit") == "None"
        expect(page.get_by_text(re.compile("error", re.IGNORECASE))).to_have_count(0)
        open_edit_form(page)
        assert memory_limit_in_form(page) == ""
        page.get_by_label("Raw schema (Optional)", exact=True).fill("raw_ui")
        save(page, "PATCH")
    stored = load(SLUG, name)
    assert (stored.raw_schema, stored.memory_limit) == ("raw_ui", "")


def test_a_block_page_that_shows_an_older_value_after_a_save_is_reloaded_before_editing(
    page: Any, prefect_api: str
) -> None:
    name = unique("reload")
    create(page, prefect_api, SLUG, name, CREATED)
    with refreshes_after_a_save(page, "503") as answer_again:
        open_edit_form(page)
        page.get_by_label(MEMORY_LIMIT, exact=True).fill("2GB")
        save(page, "PATCH")
        page.wait_for_timeout(9_000)
        assert shown_value(page, "Memory limit") == "None"  # what a person is told to look at
        answer_again()  # the server is well again; the UI does not ask by itself
        page.wait_for_timeout(2_000)
        assert shown_value(page, "Memory limit") == "None"
    page.reload()  # README: reload when the page does not show what you saved
    page.evaluate(f"{SESSION_MARK} = true")  # the reload started a new page session
    expect_page_shows_saved(page, FIRST_EDIT)
    edit(page, {"Raw schema (Optional)": "raw_ui"})
    stored = load(SLUG, name)
    assert (stored.raw_schema, stored.memory_limit) == ("raw_ui", "2GB")


def test_a_slow_refresh_after_a_save_keeps_the_older_copy_until_it_lands_then_edits_keep_both(
    page: Any, prefect_api: str
) -> None:
    # No error at all: a server slower than the person's next Edit is enough. Waiting until the
    # page shows the save (README) is what makes the next edit safe.
    name = unique("slow")
    create(page, prefect_api, SLUG, name, CREATED)
    with refreshes_after_a_save(page, "hang") as answer_again:
        open_edit_form(page)
        page.get_by_label(MEMORY_LIMIT, exact=True).fill("2GB")
        save(page, "PATCH")
        assert shown_value(page, "Memory limit") == "None"
        open_edit_form(page)
        assert memory_limit_in_form(page) == ""  # the form an impatient person would save
        page.get_by_role("link", name="Cancel").click()
        answer_again()
        expect_page_shows_saved(page, FIRST_EDIT)
    edit(page, {"Raw schema (Optional)": "raw_ui"})
    stored = load(SLUG, name)
    assert (stored.raw_schema, stored.memory_limit) == ("raw_ui", "2GB")
