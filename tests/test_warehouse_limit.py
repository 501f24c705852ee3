"""Runs that write one environment's warehouse take turns: its global concurrency limit."""

from __future__ import annotations

import contextvars
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency

from demo.data import generate_jaffle_shop
from flows.extract_load import extract_load
from pipeline.warehouse_limit import ensure_warehouse_limit, warehouse_limit_name
from tests.support.environments import save_embedded_environment

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_setup_creates_the_limit_once_and_keeps_a_limit_changed_in_the_ui() -> None:
    environment = f"limit-{time.monotonic_ns()}"
    name = warehouse_limit_name(environment)
    assert "created" in ensure_warehouse_limit(environment)
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 1
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=2))
    assert "kept (limit 2" in ensure_warehouse_limit(environment)
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 2


def test_a_load_waits_while_another_run_writes_the_same_warehouse(tmp_path: Path) -> None:
    environment, warehouse = save_embedded_environment("limit", tmp_path)
    ensure_warehouse_limit(environment)
    data = tmp_path / "jaffle"
    generate_jaffle_shop(data, days=2, orders_per_day_at_start=10)
    outcome: dict[str, Any] = {}

    def load() -> None:
        outcome["state"] = extract_load(
            environment=environment, data_dir=str(data), return_state=True
        )

    # The thread runs in this context: the test's Prefect settings are context variables.
    loader = threading.Thread(target=contextvars.copy_context().run, args=(load,))
    with concurrency(warehouse_limit_name(environment), occupy=1):  # another run is writing
        loader.start()
        loader.join(timeout=20)
        # Still waiting for the slot, and nothing written yet.
        assert loader.is_alive() and "state" not in outcome
        with warehouse:
            assert warehouse.query(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'raw'"
            ) == [(0,)]
    loader.join(timeout=300)
    assert outcome["state"].is_completed()
    with warehouse:
        assert warehouse.query("SELECT COUNT(*) FROM raw.raw_orders")[0][0] > 0
