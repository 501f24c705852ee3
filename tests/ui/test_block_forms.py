"""Every custom block type is created and edited through the Prefect UI's forms, and what
`Block.load` returns is what was typed: edits right after a create, after a cancelled edit, and
across documents in one page session (no reload, so the form mounts again as a person sees it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect_dbt.cloud import DbtCloudCredentials
from prefect_slack import SlackWebhook

from blocks import (
    ConsoleAlerts,
    DbtCloudTransform,
    DbtCoreTransform,
    DuckDBWarehouse,
    ELTEnvironment,
    SlackAlerts,
)
from blocks.environment import (
    InvalidBlockDocumentError,
    load_block,
    load_environment,
    register_block_types,
)
from tests.ui.forms import pick_document

# A nested block field to pick: (field label, document name, union member type or None).
Pick = tuple[str, str, type[Block] | None]

pytestmark = pytest.mark.ui
SECRET_TOKEN = "dbtc_ui_secret_token_value"
SAVE_TIMEOUT_MS = 90_000
CLICK_TIMEOUT_MS = 10_000  # from a click on Save to the form's validation request
SAVE_CLICKS = 3
# The UI refreshes its copy of a document after a save, retrying a failed request 3 times
# (1, 2 and 4 s apart): a person looking at the page sees the saved values well within this.
PAGE_REFRESH_TIMEOUT_MS = 30_000
WEBHOOK = "https://hooks.slack.com/services/T000/B000/uisecretwebhook"
DETAIL_URL = re.compile(r"/v2/blocks/block/[0-9a-f-]{36}(\?.*)?$")
# Set on a full page load; still set later proves the page was not loaded again.
SESSION_MARK = "window.__eltPageSession"


@pytest.fixture(scope="module", autouse=True)
def registered_block_types(prefect_api: str) -> None:
    register_block_types()


def ui_url(api_url: str, path: str) -> str:
    return api_url.removesuffix("/api") + path


def fill_form(page: Any, fields: dict[str, str]) -> None:
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    for label, value in fields.items():  # still there: the form did not reload its values
        expect(page.get_by_label(label, exact=True)).to_have_value(value)


def open_page(page: Any, api_url: str, path: str) -> None:
    """A full page load of `path`, which starts a page session."""
    page.goto(ui_url(api_url, path))
    page.evaluate(f"{SESSION_MARK} = true")


def go_in_session(page: Any, path: str) -> None:
    """Navigate inside the running app (no page load), as its own links do."""
    assert page.evaluate(SESSION_MARK), "the page was loaded again: no longer one page session"
    # The app's router follows history changes, as on Back and Forward.
    page.evaluate(
        "path => { history.pushState({}, '', path); "
        "dispatchEvent(new PopStateEvent('popstate', {state: history.state})); }",
        path,
    )
    page.wait_for_url(re.compile(re.escape(path) + r"(\?.*)?$"))


def fill_and_pick(page: Any, fields: dict[str, str], picks: Sequence[Pick]) -> None:
    page.get_by_role("button", name="Save").wait_for()
    fill_form(page, fields)
    for label, document, member in picks:
        pick_document(page, label, document, member)


def create(
    page: Any,
    api_url: str,
    slug: str,
    name: str,
    fields: dict[str, str],
    picks: Sequence[Pick] = (),
    *,
    in_session: bool = False,
) -> str:
    """Fill the create form of `slug` (after a full page load unless `in_session`), pick nested
    documents and save; return the saved document's page path."""
    path = f"/v2/blocks/catalog/{slug}/create"
    if in_session:
        go_in_session(page, path)
    else:
        open_page(page, api_url, path)
    fill_and_pick(page, {"Name": name, **fields}, picks)
    save(page, "POST")
    return str(page.url).removeprefix(ui_url(api_url, "")).split("?")[0]


def open_edit_form(page: Any) -> None:
    """From a document's page, open its edit form (the app's own menu: no page load)."""
    menu = page.get_by_role("button", name="Open menu")
    # Right after a save the page the app leaves can still show its own menus.
    expect(menu).to_have_count(1)
    menu.click()
    page.get_by_role("menuitem", name="Edit").click()
    page.get_by_role("button", name="Save").wait_for()


def edit(page: Any, fields: dict[str, str], picks: Sequence[Pick] = ()) -> None:
    """Edit the document whose page is shown, in this page session: change `fields`, pick
    `picks`, save.

    Prefect 3.8.8's V2 edit form shows every nested block field as "Select a block..." and
    saves an untouched one as a copy of its values: a person picks each one again.
    """
    open_edit_form(page)
    fill_and_pick(page, fields, picks)
    assert page.evaluate(SESSION_MARK), "the page was loaded again: the spec would not hold"
    save(page, "PATCH")
    expect_page_shows_saved(page, fields)


def expect_page_shows_saved(page: Any, fields: dict[str, str]) -> None:
    """After a save, wait (as README tells a person) until the block's page shows the values
    just saved: until it does, the app's copy predates the save and an edit form opened from it
    would save the older values back (tests/ui/test_stale_edit_form.py)."""
    for label, value in fields.items():
        title = label.removesuffix(" (Optional)")
        term = page.locator("dt").filter(has_text=re.compile(rf"^{re.escape(title)}$"))
        try:
            expect(term.first.locator("xpath=following-sibling::dd[1]")).to_have_text(
                value, timeout=PAGE_REFRESH_TIMEOUT_MS
            )
        except AssertionError as stale:
            raise AssertionError(
                f"{PAGE_REFRESH_TIMEOUT_MS // 1000} s after the save, the block's page still "
                f"shows an older {title!r}: Prefect's UI could not refresh its copy (the server "
                "failed its requests), and an edit now would save that copy back"
            ) from stale


def cancel_edit(page: Any) -> None:
    """Open the edit form of the document shown, then Cancel back to its page."""
    open_edit_form(page)
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(DETAIL_URL)
    page.get_by_role("button", name="Open menu").wait_for()


def click_save(page: Any) -> None:
    """Click Save until the form acts on it (it first asks the server to validate the values).

    A click can be lost: the create form's Save button turns disabled while the name typed is
    being checked, and a click landing as it re-renders does nothing. The validation request
    comes before any save request, so clicking again when none was sent can't save twice.
    """
    for _ in range(SAVE_CLICKS):
        try:
            with page.expect_request(
                lambda r: r.method == "POST" and "/ui/schemas/validate" in r.url,
                timeout=CLICK_TIMEOUT_MS,
            ):
                page.get_by_role("button", name="Save").click()
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError(
        f"{SAVE_CLICKS} clicks on Save, and the form never acted; toasts: "
        f"{page.locator('[data-sonner-toast]').all_inner_texts()}; "
        f"page: {page.inner_text('main')[:1500]!r}"
    )


BUSY_SAVES = 3


def save(page: Any, method: str) -> None:
    """Save the form and wait for the saved document's page; fail with what the server or the
    page said when the save request is refused or never sent."""
    for attempt in range(1, BUSY_SAVES + 1):
        try:
            with page.expect_response(
                lambda r: r.request.method == method and "/api/block_documents" in r.url,
                timeout=SAVE_TIMEOUT_MS,
            ) as sent:
                click_save(page)
        except PlaywrightTimeoutError:
            toasts = page.locator("[data-sonner-toast]").all_inner_texts()
            raise AssertionError(
                f"the form validated but sent no {method} within {SAVE_TIMEOUT_MS // 1000} s; "
                f"toasts: {toasts}; page: {page.inner_text('main')[:1500]!r}"
            ) from None
        response = sent.value
        # 503: the server's database was busy and the save rolled back (nothing stored); the
        # form stays open and a person clicks Save again.
        if response.status != 503 or attempt == BUSY_SAVES:
            break
        page.wait_for_timeout(2000)
    assert response.ok, f"the UI's save was refused: {response.status} {response.text()[:500]}"
    page.wait_for_url(re.compile(r"/v2/blocks/block/[0-9a-f-]{36}(\?.*)?$"))


def load(slug: str, name: str) -> Any:
    return Block.load(f"{slug}/{name}", _sync=True)  # type: ignore[call-arg]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def saved(block: Block, prefix: str) -> str:
    """Save `block` as a new document (as setup or a person would) and return its name."""
    name = unique(prefix)
    block.save(name, _sync=True)  # type: ignore[call-arg]
    return name


def document_id(slug: str, name: str) -> UUID:
    block: Block = load(slug, name)
    assert block._block_document_id is not None
    return block._block_document_id


def referenced_documents(slug: str, name: str) -> dict[str, UUID]:
    """The documents a stored document references, by field (inlined values are not)."""
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(name, slug)
    return {
        field: UUID(str(reference["block_document"]["id"]))
        for field, reference in document.block_document_references.items()
    }


def shown_value(page: Any, title: str) -> str:
    """What a document's page shows for the field titled `title`."""
    term = page.locator("dt").filter(has_text=re.compile(rf"^{re.escape(title)}$"))
    return str(term.locator("xpath=following-sibling::dd[1]").inner_text())


Step = tuple[dict[str, str], Sequence[Pick]]  # fields typed, nested documents picked


def edits_in_one_page_session(
    page: Any, api_url: str, slug: str, created: Step, edited: Step, edited_again: Step
) -> tuple[str, str]:
    """Create A (after a full page load) and edit it right after; create B in the same page
    session and edit it right after; back on A, Edit -> Cancel -> Edit. Return A's and B's names.

    Every edit form after the first is a second mount of Prefect's lazily loaded form: the case
    that wrote schema defaults over saved values.
    """
    first, second = unique(slug), unique(slug)
    first_path = create(page, api_url, slug, first, *created)
    edit(page, *edited)
    create(page, api_url, slug, second, *created, in_session=True)
    edit(page, *edited)
    go_in_session(page, first_path)
    cancel_edit(page)
    edit(page, *edited_again)
    return first, second


def values(block: Any, fields: dict[str, Any]) -> dict[str, Any]:
    return {key: getattr(block, key) for key in fields}


def test_a_snowflake_warehouse_keeps_every_value_through_edits_in_one_page_session(
    page: Any, prefect_api: str, encrypted_private_key_pem: tuple[str, str]
) -> None:
    pem, passphrase = encrypted_private_key_pem
    created = {
        "Account identifier": "myorg-myaccount", "User": "ELT_LOADER",
        "Virtual warehouse": "LOADING", "Database": "RAW_DB",
        # A text area: the PEM keeps its newlines.
        "Key pair: private key (PEM) (Optional)": pem,
        "Key pair: passphrase (Optional)": passphrase,
        "Raw schema (Optional)": "LANDING", "Query tag (Optional)": "elt-ui",
    }  # fmt: skip
    first, second = edits_in_one_page_session(
        page, prefect_api, "snowflake-warehouse", (created, []),
        ({"Role (Optional)": "TRANSFORMER"}, []), ({"Virtual warehouse": "TRANSFORMING"}, []),
    )  # fmt: skip
    # An empty secret shows as not set; a set one never shows.
    assert shown_value(page, "Password: password") == "None"
    assert "PRIVATE KEY" not in page.content() and passphrase not in page.content()
    typed = {
        "account": "myorg-myaccount", "user": "ELT_LOADER", "database": "RAW_DB",
        "auth_method": "key pair", "raw_schema": "LANDING", "transform_schema": "ANALYTICS",
        "query_tag": "elt-ui", "role": "TRANSFORMER",
    }  # fmt: skip
    for name, warehouse in ((first, "TRANSFORMING"), (second, "LOADING")):
        stored = load("snowflake-warehouse", name)
        assert values(stored, typed) == typed and stored.warehouse == warehouse, name
        assert stored.private_key.get_secret_value() == pem
        assert stored.private_key_passphrase.get_secret_value() == passphrase
        assert stored.password.get_secret_value() == ""
        # What the form stored is a key prefect-snowflake can use, with no password.
        assert stored.credentials().resolve_private_key() is not None


@pytest.mark.parametrize(
    ("slug", "created", "edited", "edited_again", "expected", "second_differs"),
    [
        ("duckdb-warehouse",
         {"Database file (Optional)": "data/a.duckdb", "Raw schema (Optional)": "landing",
          "Transform schema (Optional)": "marts"},
         {"Memory limit (Optional)": "2GB"}, {"Raw schema (Optional)": "raw_ui"},
         {"path": "data/a.duckdb", "raw_schema": "raw_ui", "transform_schema": "marts",
          "memory_limit": "2GB"},
         {"raw_schema": "landing"}),
        ("dbt-core-transform",
         {"dbt command (Optional)": "build --select marts+", "Target (Optional)": "duckdb",
          "Project folder (Optional)": "dbt"},
         {"Threads (Optional)": "2"}, {"Profiles folder (Optional)": "dbt/profiles"},
         {"command": "build --select marts+", "target": "duckdb", "threads": 2,
          "project_dir": "dbt", "profiles_dir": "dbt/profiles"},
         {"profiles_dir": "dbt"}),
        ("console-alerts",
         {"Environment label (Optional)": "staging"},
         {"Prefect UI URL (Optional)": "http://127.0.0.1:4200"},
         {"Environment label (Optional)": "staging-2"},
         {"environment_label": "staging-2", "prefect_ui_url": "http://127.0.0.1:4200"},
         {"environment_label": "staging"}),
    ],
)  # fmt: skip
def test_local_blocks_keep_every_value_through_edits_in_one_page_session(
    page: Any, prefect_api: str, slug: str, created: dict[str, str], edited: dict[str, str],
    edited_again: dict[str, str], expected: dict[str, Any], second_differs: dict[str, Any],
) -> None:  # fmt: skip
    first, second = edits_in_one_page_session(
        page, prefect_api, slug, (created, []), (edited, []), (edited_again, [])
    )
    assert values(load(slug, first), expected) == expected
    # The second document had the create and the first edit only.
    assert values(load(slug, second), expected) == {**expected, **second_differs}


def test_a_dbt_cloud_transform_keeps_its_credentials_and_values_when_picked_again(
    page: Any, prefect_api: str
) -> None:
    credentials = saved(DbtCloudCredentials(api_key=SECRET_TOKEN, account_id=4242), "dbt-creds")
    picks: list[Pick] = [("dbt Cloud credentials", credentials, None)]
    created = {"Job ID": "77", "Wait timeout (seconds) (Optional)": "600"}
    first, second = edits_in_one_page_session(
        page, prefect_api, "dbt-cloud-transform", (created, picks),
        ({"Poll interval (seconds) (Optional)": "30"}, picks),
        ({"Re-runs of failed steps (Optional)": "2"}, picks),
    )  # fmt: skip
    assert SECRET_TOKEN not in page.content()
    credentials_id = document_id("dbt-cloud-credentials", credentials)
    for name, retries in ((first, 2), (second, 0)):
        stored = load("dbt-cloud-transform", name)
        assert isinstance(stored, DbtCloudTransform)
        assert referenced_documents("dbt-cloud-transform", name) == {"credentials": credentials_id}
        assert (stored.job_id, stored.timeout_seconds, stored.poll_interval_seconds) == (
            77,
            600,
            30,
        )
        assert (stored.failed_steps_retries, stored.cancel_on_timeout) == (retries, True)
        assert stored.artifacts == ["run_results.json", "manifest.json"]
        assert stored.credentials.api_key.get_secret_value() == SECRET_TOKEN
        assert (stored.credentials.account_id, stored.credentials.domain) == (
            4242, "cloud.getdbt.com"
        )  # fmt: skip

    # Not picked again, the credentials are saved as a copy with a masked key: refused at load.
    edit(page, {"Job ID": "78"})
    assert referenced_documents("dbt-cloud-transform", first) == {}
    with pytest.raises(InvalidBlockDocumentError, match=r"credentials\.api_key") as refused:
        load_block(f"dbt-cloud-transform/{first}")
    assert "Pick the dbt Cloud Credentials document again" in str(refused.value)


def test_slack_alerts_keep_their_webhook_document_and_values_when_picked_again(
    page: Any, prefect_api: str
) -> None:
    hook = saved(SlackWebhook(url=WEBHOOK), "hook")
    picks: list[Pick] = [("Slack webhook", hook, None)]
    first, second = edits_in_one_page_session(
        page, prefect_api, "slack-alerts",
        ({"Environment label (Optional)": "prod", "Mention (Optional)": "<!here>"}, picks),
        ({"Prefect UI URL (Optional)": "https://prefect.example.com"}, picks),
        ({"Mention (Optional)": "<!channel>"}, picks),
    )  # fmt: skip
    assert "uisecretwebhook" not in page.content()
    hook_id = document_id("slack-incoming-webhook", hook)
    for name, mention in ((first, "<!channel>"), (second, "<!here>")):
        stored = load("slack-alerts", name)
        assert isinstance(stored, SlackAlerts)
        assert referenced_documents("slack-alerts", name) == {"webhook": hook_id}
        assert stored.webhook.url.get_secret_value() == WEBHOOK
        assert (stored.environment_label, stored.mention, stored.prefect_ui_url) == (
            "prod", mention, "https://prefect.example.com"
        )  # fmt: skip

    # Not picked again, the webhook is saved as a copy with a masked URL: refused at load.
    edit(page, {"Mention (Optional)": "<!here>"})
    assert referenced_documents("slack-alerts", first) == {}
    with pytest.raises(InvalidBlockDocumentError, match=r"webhook\.url") as refused:
        load_block(f"slack-alerts/{first}")
    assert "Pick the Slack Incoming Webhook document again" in str(refused.value)


def test_an_environment_is_assembled_by_picking_documents_of_either_union_type(
    page: Any, prefect_api: str
) -> None:
    duck_a = saved(DuckDBWarehouse(path="data/ui-a.duckdb"), "duck-a")
    duck_b = saved(DuckDBWarehouse(path="data/ui-b.duckdb"), "duck-b")
    core = saved(DbtCoreTransform(threads=2), "core")
    console = saved(ConsoleAlerts(environment_label="ui"), "console")
    console_b = saved(ConsoleAlerts(environment_label="ui-b"), "console-b")
    # Union members: each its own tab; ConsoleAlerts is the second one, not the default tab.
    picks: list[Pick] = [
        ("Warehouse", duck_a, DuckDBWarehouse),
        ("Transform", core, DbtCoreTransform),
        ("Alerts", console, ConsoleAlerts),
    ]
    other_warehouse = [("Warehouse", duck_b, DuckDBWarehouse), *picks[1:]]
    other_alerts = [*other_warehouse[:2], ("Alerts", console_b, ConsoleAlerts)]
    first, second = edits_in_one_page_session(
        page, prefect_api, "elt-environment", ({}, picks), ({}, other_warehouse),
        ({}, other_alerts),
    )  # fmt: skip
    ids = {
        name: document_id(slug, name)
        for slug, name in [
            ("duckdb-warehouse", duck_b), ("dbt-core-transform", core),
            ("console-alerts", console), ("console-alerts", console_b),
        ]
    }  # fmt: skip
    expected = {
        first: {"warehouse": ids[duck_b], "transform": ids[core], "alerts": ids[console_b]},
        second: {"warehouse": ids[duck_b], "transform": ids[core], "alerts": ids[console]},
    }
    for name, references in expected.items():
        assert referenced_documents("elt-environment", name) == references
        stored = load("elt-environment", name)
        assert isinstance(stored, ELTEnvironment)
        assert isinstance(stored.warehouse, DuckDBWarehouse)
        assert isinstance(stored.transform, DbtCoreTransform)
        assert (stored.warehouse.path, stored.transform.threads) == ("data/ui-b.duckdb", 2)
    assert load("elt-environment", first).alerts.environment_label == "ui-b"

    # Not picked again, the documents are saved as copies: refused at load, naming the fix.
    edit(page, {}, picks[:1])
    assert set(referenced_documents("elt-environment", first)) == {"warehouse"}
    with pytest.raises(InvalidBlockDocumentError, match="holds a copy of its transform, alerts"):
        load_environment(first)


def test_an_environments_v1_block_page_links_each_document_it_picked(
    page: Any, prefect_api: str
) -> None:
    """Prefect 3.8's V2 block page shows a picked document's values; its V1 page (Switch to V1
    UI) links each one to the document's own page."""
    picked = {
        "Warehouse": ("duckdb-warehouse", saved(DuckDBWarehouse(path="data/ui-l.duckdb"), "wh")),
        "Transform": ("dbt-core-transform", saved(DbtCoreTransform(threads=3), "dbt")),
        "Alerts": ("console-alerts", saved(ConsoleAlerts(environment_label="ui-l"), "log")),
    }
    documents = {label: load(slug, name) for label, (slug, name) in picked.items()}
    environment = saved(
        ELTEnvironment(
            warehouse=documents["Warehouse"],
            transform=documents["Transform"],
            alerts=documents["Alerts"],
        ),
        "env",
    )
    open_page(page, prefect_api, f"/blocks/block/{document_id('elt-environment', environment)}")
    for label, (slug, name) in picked.items():
        field = page.locator(".block-document-key-value").filter(has_text=label)
        link = field.get_by_role("link", name=name, exact=True)
        expect(link).to_have_attribute("href", f"/blocks/block/{document_id(slug, name)}")
    page.locator(".block-document-key-value").filter(has_text="Warehouse").get_by_role(
        "link"
    ).click()
    warehouse_id = document_id("duckdb-warehouse", picked["Warehouse"][1])
    page.wait_for_url(re.compile(f"/blocks/block/{warehouse_id}$"))
    expect(page.get_by_text("data/ui-l.duckdb")).to_be_visible()


def test_a_bad_value_typed_into_the_form_is_refused_on_load_naming_the_field(
    page: Any, prefect_api: str
) -> None:
    # Prefect 3.8's form and API store block data without checking JSON-schema patterns,
    # so the block type refuses it when a flow loads it, with the field and the fix.
    name = unique("bad")
    create(page, prefect_api, "snowflake-warehouse", name, {
        "Account identifier": "https://myorg.snowflakecomputing.com",
        "User": "U", "Password: password (Optional)": "pw", "Virtual warehouse": "W",
        "Database": "D",
    })  # fmt: skip
    with pytest.raises(InvalidBlockDocumentError) as refused:
        load_block(f"snowflake-warehouse/{name}")
    message = str(refused.value)
    assert "account" in message and "looks like a URL" in message
    assert f"snowflake-warehouse/{name}" in message
