"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.support.warehouses", "tests.support.dbt_cloud"]
SERVER_FIXTURES = {"prefect_server", "prefect_api"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the session's Prefect server, so `-m "not server"` skips it."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Prefect server (API and UI, SQLite) for the whole session; yields its API URL."""
    from tests.support.prefect_server import running_prefect_server

    with running_prefect_server(tmp_path_factory.mktemp("prefect-home")) as api_url:
        yield api_url


@pytest.fixture(scope="session")
def prefect_api(prefect_server: str) -> Iterator[str]:
    """Point this process's Prefect client at the session's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        yield prefect_server
        # Ship buffered run logs while the server is still up.
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)


def _rsa_pem(passphrase: bytes | None) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    """An unencrypted RSA private key in PEM, as Snowflake key-pair auth uses."""
    return _rsa_pem(None)


@pytest.fixture(scope="session")
def encrypted_private_key_pem() -> tuple[str, str]:
    """An encrypted RSA private key in PEM and its passphrase."""
    return _rsa_pem(b"correct horse"), "correct horse"
