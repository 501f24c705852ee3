"""What dbt Core builds, from what is known: everything, what the sources with new rows feed,
a retry of what failed, or nothing; and the facts it is decided from."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build_plan import (
    BuildFacts,
    BuildPlan,
    LastBuild,
    loaded_tables,
    plan_build,
    project_fingerprint,
    selects_itself,
)
from pipeline.loading import TableLoad

CODE = "code-v1"
BUILT = LastBuild(fingerprint=CODE, complete=True)
ORDERS = frozenset({"raw_orders", "raw_items"})


@pytest.mark.parametrize(
    ("facts", "action", "reason"),
    [
        (BuildFacts(CODE, BUILT, frozenset()), "nothing", "no source received rows"),
        (BuildFacts(CODE, BUILT, ORDERS), "downstream", "only raw_items, raw_orders"),
        (BuildFacts(CODE, BUILT, ORDERS, full_refresh=True), "everything", "full refresh"),
        (BuildFacts(CODE, BUILT, frozenset(), full_refresh=True), "everything", "full refresh"),
        (BuildFacts("code-v2", BUILT, frozenset()), "everything", "project or command changed"),
        (BuildFacts(CODE, None, frozenset()), "everything", "no earlier build"),
        (BuildFacts(CODE, LastBuild(CODE, False), frozenset()), "everything", "did not complete"),
        (BuildFacts(CODE, BUILT, None), "everything", "not known"),
        (BuildFacts(CODE, BUILT, ORDERS, selects_itself=True), "everything", "its own nodes"),
        (BuildFacts(CODE, LastBuild(CODE, False), ORDERS, retrying=True), "retry", "failed"),
    ],
)
def test_the_plan_follows_from_the_facts(facts: BuildFacts, action: str, reason: str) -> None:
    plan = plan_build(facts)
    assert plan.action == action
    assert reason in plan.reason


def test_a_downstream_plan_selects_what_each_loaded_source_feeds() -> None:
    plan = plan_build(BuildFacts(CODE, BUILT, ORDERS))
    assert plan.dbt_args(["build"]) == [
        "build", "--select", "source:*.raw_items+ source:*.raw_orders+",
    ]  # fmt: skip


def test_a_full_refresh_rebuilds_incremental_models_too_and_a_retry_runs_dbt_retry() -> None:
    assert plan_build(BuildFacts(CODE, full_refresh=True)).dbt_args(["build"]) == [
        "build", "--full-refresh",
    ]  # fmt: skip
    assert BuildPlan("retry", "").dbt_args(["build"]) == ["retry"]
    assert BuildPlan("everything", "").dbt_args(["run", "-x"]) == ["run", "-x"]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["build"], False),
        (["build", "--threads", "2"], False),
        (["build", "--select", "marts+"], True),
        (["build", "-s", "orders"], True),
        (["run", "--exclude=orders"], True),
        (["build", "--selector", "nightly"], True),
    ],
)
def test_a_command_that_chooses_its_own_nodes_is_recognised(
    words: list[str], expected: bool
) -> None:
    assert selects_itself(words) is expected


def test_only_tables_that_inserted_or_updated_rows_count_as_loaded() -> None:
    loads = [
        TableLoad("raw_orders", "incremental", rows_read=5, inserted=5),
        TableLoad("raw_customers", "incremental", rows_read=2, updated=2),
        TableLoad("raw_items", "incremental", rows_read=3),  # read again, nothing new
        TableLoad("raw_stores", "unchanged"),
    ]
    assert loaded_tables(loads) == {"raw_orders", "raw_customers"}


def test_the_project_fingerprint_changes_with_its_code_not_with_what_dbt_writes(
    tmp_path: Path,
) -> None:
    project = tmp_path / "dbt"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: shop\n")
    model = project / "models" / "orders.sql"
    model.write_text("select 1")
    before = project_fingerprint(project, "build")
    for written in ["target/run_results.json", "logs/dbt.log", ".user.yml"]:
        (project / written).parent.mkdir(exist_ok=True)
        (project / written).write_text("{}")
    assert project_fingerprint(project, "build") == before
    assert project_fingerprint(project, "build --select orders") != before
    model.write_text("select 2")
    assert project_fingerprint(project, "build") != before
