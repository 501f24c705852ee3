"""Headless Debian Chromium driven by Playwright, against a Prefect server of the UI specs' own."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        message = "Debian's chromium is not installed (make test installs it as root)"
        if os.environ.get("ELT_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="package")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server (and SQLite file) no other test writes to.

    On the suite's shared server, flow runs of other tests keep SQLite busy and it answers some
    requests 503. Prefect 3.8.8's UI refreshes its copy of a block after a save in the
    background; when that refresh fails it keeps the copy from before the save, shows no
    error, and the next edit form is filled from it and saves it back (tests/ui/
    test_stale_edit_form.py). Here the specs see the UI as a person with a healthy server does.
    """
    from tests.support.prefect_server import running_prefect_server

    with running_prefect_server(tmp_path_factory.mktemp("prefect-home-ui")) as api_url:
        yield api_url


@pytest.fixture(scope="package")
def prefect_api(prefect_server: str) -> Iterator[str]:
    """Point this process's Prefect client (`Block.load`, setup) at the UI specs' server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        yield prefect_server


@pytest.fixture
def page(browser: object, prefect_api: str) -> Iterator[object]:
    """A page that can reach only this machine (the UI fetches logos from the internet)."""
    context = browser.new_context(viewport={"width": 1300, "height": 2000})  # type: ignore[attr-defined]
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort()
        ),
    )
    yield context.new_page()
    context.close()
