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
from collections.abc import Iterator
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
GIVE_UP_CHECKS = 12  # of 5.5 s each


class Refreshes:
    """The UI's requests for one document after its next save, as the test server answers."""

    def __init__(self) -> None:
        self.saved = False
        self.answering = False
        self.refused = 0
        self.hung: list[Any] = []

    def answer_again(self) -> None:
        """The server is well again: answer from now on, and the requests hung so far."""
        self.answering = True
        while self.hung:
            self.hung.pop().fallback()

    def wait_until_the_ui_gives_up(self, page: Any) -> None:
        """Wait until the UI stops retrying (its longest pause between retries is 4 s)."""
        for _ in range(GIVE_UP_CHECKS):
            seen = self.refused
            page.wait_for_timeout(5_500)
            if self.refused and self.refused == seen:
                return
        raise AssertionError(f"the UI still retried after {self.refused} refused requests")


@contextmanager
def refreshes_after_a_save(page: Any, answer: str) -> Iterator[Refreshes]:
    """From the next save of the document shown on, make the UI's requests for that document
    fail with 503 (`answer="503"`) or hang unanswered (`answer="hang"`)."""
    document_id = page.url.split("?")[0].rsplit("/", 1)[-1]
    refreshes = Refreshes()

    def note_save(request: Any) -> None:
        # The refresh is sent after the save's response: requests before it are answered.
        if request.method == "PATCH" and document_id in request.url:
            refreshes.saved = True

    def intercept(route: Any) -> None:
        if route.request.method != "GET" or not refreshes.saved or refreshes.answering:
            route.fallback()
        elif answer == "hang":
            refreshes.hung.append(route)
        else:
            refreshes.refused += 1
            route.fulfill(
                status=503,
                content_type="application/json",
                body='{"exception_message": "Service Unavailable"}',
            )

    page.on("request", note_save)
    page.route(re.compile(rf"/api/block_documents/{document_id}(\?.*)?$"), intercept)
    try:
        yield refreshes
    finally:
        refreshes.answer_again()


def memory_limit_in_form(page: Any) -> str:
    return str(page.get_by_label(MEMORY_LIMIT, exact=True).input_value())


def test_an_edit_saved_while_the_ui_could_not_refresh_the_block_writes_the_older_values_back(
    page: Any, prefect_api: str
) -> None:
    # Prefect's behaviour, not the project's: this spec fails once a Prefect upgrade refreshes
    # the form's copy before it can be saved (then README's rule and this file can go).
    name = unique("stale")
    create(page, prefect_api, SLUG, name, CREATED)
    with refreshes_after_a_save(page, "503") as refreshes:
        open_edit_form(page)
        page.get_by_label(MEMORY_LIMIT, exact=True).fill("2GB")
        save(page, "PATCH")
        assert load(SLUG, name).memory_limit == "2GB"
        refreshes.wait_until_the_ui_gives_up(page)  # and it says nothing
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
    with refreshes_after_a_save(page, "503") as refreshes:
        open_edit_form(page)
        page.get_by_label(MEMORY_LIMIT, exact=True).fill("2GB")
        save(page, "PATCH")
        refreshes.wait_until_the_ui_gives_up(page)
        assert shown_value(page, "Memory limit") == "None"  # what a person is told to look at
        refreshes.answer_again()  # the server is well again; the UI does not ask by itself
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
    with refreshes_after_a_save(page, "hang") as refreshes:
        open_edit_form(page)
        page.get_by_label(MEMORY_LIMIT, exact=True).fill("2GB")
        save(page, "PATCH")
        assert shown_value(page, "Memory limit") == "None"
        open_edit_form(page)
        assert memory_limit_in_form(page) == ""  # the form an impatient person would save
        page.get_by_role("link", name="Cancel").click()
        refreshes.answer_again()
        expect_page_shows_saved(page, FIRST_EDIT)
    edit(page, {"Raw schema (Optional)": "raw_ui"})
    stored = load(SLUG, name)
    assert (stored.raw_schema, stored.memory_limit) == ("raw_ui", "2GB")
