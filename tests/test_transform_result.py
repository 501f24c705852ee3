"""dbt node outcomes, typed: one classifier for every dbt status; blank messages never raise."""

from __future__ import annotations

import pickle
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.dbt_cloud import DbtCloudError
from pipeline.dbt_core import node_result
from pipeline.dbt_results import node_rows
from pipeline.transform_result import (
    NodeResult,
    NodeStatus,
    TransformResult,
    classify_status,
    nodes_from_run_results,
)


@pytest.mark.parametrize(
    ("dbt_status", "expected"),
    [
        ("success", NodeStatus.PASSED),
        ("pass", NodeStatus.PASSED),
        ("warn", NodeStatus.WARNED),
        ("partial success", NodeStatus.WARNED),
        ("error", NodeStatus.FAILED),
        ("fail", NodeStatus.FAILED),
        ("runtime error", NodeStatus.FAILED),
        ("skipped", NodeStatus.SKIPPED),
        ("no-op", NodeStatus.SKIPPED),
        ("Success", NodeStatus.PASSED),
        ("a status from a newer dbt", NodeStatus.FAILED),
        (None, NodeStatus.FAILED),
    ],
)
def test_every_dbt_status_word_is_classified(dbt_status: Any, expected: NodeStatus) -> None:
    assert classify_status(dbt_status) is expected


def test_dbt_cores_own_status_enums_are_classified_by_their_value() -> None:
    from dbt.artifacts.schemas.results import FreshnessStatus, RunStatus, TestStatus

    assert classify_status(RunStatus.Success) is NodeStatus.PASSED
    assert classify_status(TestStatus.Warn) is NodeStatus.WARNED
    assert classify_status(TestStatus.Fail) is NodeStatus.FAILED
    assert classify_status(FreshnessStatus.RuntimeErr) is NodeStatus.FAILED


def dbt_core_outcome(unique_id: str, status: str, message: str | None) -> Any:
    """Shaped like dbt's RunResult: `.node.unique_id`, `.status`, `.message`, `.execution_time`."""
    return SimpleNamespace(
        node=SimpleNamespace(unique_id=unique_id),
        status=status,
        message=message,
        execution_time=0.25,
    )


BLANK_MESSAGES = [None, "", "   ", "\n\n"]


@pytest.mark.parametrize("message", BLANK_MESSAGES)
def test_a_failed_dbt_core_node_with_a_blank_message_is_named_without_raising(
    message: str | None,
) -> None:
    node = node_result(dbt_core_outcome("model.shop.orders", "error", message))
    assert node == NodeResult("model.shop.orders", NodeStatus.FAILED, "error", 0.25, "")
    result = TransformResult("dbt Core", [node])
    assert result.failures == ["model.shop.orders"]
    assert node_rows(result)[0]["message"] == ""


@pytest.mark.parametrize("message", BLANK_MESSAGES)
def test_a_failed_dbt_cloud_node_with_a_blank_message_is_named_without_raising(
    message: str | None,
) -> None:
    raw = {"unique_id": "test.shop.unique_orders_id", "status": "fail", "message": message}
    [node] = nodes_from_run_results({"results": [raw]})
    assert (node.status, node.message, node.seconds) == (NodeStatus.FAILED, "", 0.0)
    result = TransformResult("dbt Cloud", [node])
    assert result.failures == ["test.shop.unique_orders_id"]
    assert node_rows(result)[0]["message"] == ""


def test_a_dbt_cloud_node_without_a_message_key_is_named_without_raising() -> None:
    [node] = nodes_from_run_results({"results": [{"unique_id": "model.x", "status": "error"}]})
    assert TransformResult("dbt Cloud", [node]).failures == ["model.x"]


def test_a_multi_line_message_keeps_its_first_non_blank_line() -> None:
    node = node_result(dbt_core_outcome("test.a", "fail", "\n  Got 2 results\n  compiled: x\n"))
    assert node.describe() == "test.a: Got 2 results"


def test_both_paths_give_the_same_row_for_the_same_node() -> None:
    core = node_result(dbt_core_outcome("test.a", "warn", "Got 1 result"))
    cloud = NodeResult.from_json(
        {"unique_id": "test.a", "status": "warn", "execution_time": 0.25, "message": "Got 1 result"}
    )
    assert core == cloud


def test_counts_tell_warned_tests_apart_from_failed_ones() -> None:
    result = TransformResult(
        "dbt Core",
        [
            NodeResult.of("model.a", "success", 1.0, None),
            NodeResult.of("model.b", "error", 1.0, "boom"),
            NodeResult.of("model.c", "skipped", 0.0, None),
            NodeResult.of("test.pass", "pass", 0.1, None),
            NodeResult.of("unit_test.pass", "pass", 0.1, None),
            NodeResult.of("test.warn", "warn", 0.1, "Got 3 results"),
            NodeResult.of("test.fail", "fail", 0.1, "Got 2 results"),
            NodeResult.of("test.skipped", "skipped", 0.0, None),
            NodeResult.of("source.shop.raw.orders", "pass", 0.1, None),
        ],
    )
    assert result.counts == {
        "models": 1, "tests_passed": 2, "tests_warned": 1, "tests_failed": 1, "errors": 1,
    }  # fmt: skip
    assert result.failures == ["model.b: boom", "test.fail: Got 2 results"]


def test_node_rows_list_failures_then_warnings_then_skips_then_passes() -> None:
    result = TransformResult(
        "dbt Cloud",
        [
            NodeResult.of("model.a", "success", 1.0, None),
            NodeResult.of("test.b", "warn", 0.1, "w"),
            NodeResult.of("model.c", "skipped", 0.0, None),
            NodeResult.of("test.d", "fail", 0.1, "f"),
        ],
    )
    assert [row["node"] for row in node_rows(result)] == ["test.d", "test.b", "model.c", "model.a"]
    assert node_rows(result)[0] == {
        "node": "test.d",
        "status": "fail",
        "seconds": 0.1,
        "message": "f",
    }


def test_a_transform_error_keeps_its_result_and_run_url_when_pickled() -> None:
    result = TransformResult(
        "dbt Cloud", [NodeResult.of("test.d", "fail", 0.1, "f")], run_url="https://x/runs/1"
    )
    error = pickle.loads(pickle.dumps(DbtCloudError("dbt Cloud run 1 errored", result)))
    assert isinstance(error, DbtCloudError)
    assert str(error) == "dbt Cloud run 1 errored"
    assert (error.run_url, error.failures) == ("https://x/runs/1", ["test.d: f"])
