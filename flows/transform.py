"""The transform flow: the environment's dbt (Core or Cloud) over the raw tables."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prefect import flow

from blocks import DbtCoreTransform, load_environment
from elt.alerting import FLOW_HOOKS
from elt.dbt_cloud import run_dbt_cloud_job
from elt.dbt_core import run_dbt_core
from elt.dbt_results import counts, publish_links, publish_run_results


@dataclass
class TransformResult:
    """What dbt did, for the ELT summary."""

    runner: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    run_url: str = ""
    run_results: dict[str, Any] = field(default_factory=dict)


@flow(name="transform", log_prints=True, **FLOW_HOOKS)
def transform(environment: str = "local") -> TransformResult:
    """Run dbt as the environment says: dbt Core in-process, or a dbt Cloud job."""
    started = time.perf_counter()
    settings = load_environment(environment)
    runner = settings.transform
    if isinstance(runner, DbtCoreTransform):
        try:
            result = run_dbt_core(runner, settings.warehouse)
            run_results = result.run_results
        except Exception as exc:
            run_results = getattr(exc, "run_results", {}) or {}
            publish_run_results(run_results, key="dbt-core-results")
            raise
        publish_run_results(run_results, key="dbt-core-results")
        publish_links(
            [(name, (result.target_dir / name).as_uri()) for name in ("run_results.json",
                                                                       "manifest.json")],
            key="dbt-core",
        )  # fmt: skip
        return TransformResult(
            "dbt Core", counts(run_results), time.perf_counter() - started, run_results=run_results
        )
    cloud = run_dbt_cloud_job(runner)
    return TransformResult(
        "dbt Cloud", counts(cloud.run_results), time.perf_counter() - started, cloud.run_url,
        cloud.run_results,
    )  # fmt: skip


if __name__ == "__main__":
    transform()
