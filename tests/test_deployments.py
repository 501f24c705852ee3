"""prefect.yaml deployed for real: `prefect --no-prompt deploy --all` against a local server with
the work pools created from deployments/, the Job each Kubernetes deployment would become
(rendered by prefect-kubernetes' own worker code, validated strictly against the Kubernetes
schema), and a scheduled run of a local deployment carried to completion by a process worker.

The build and push steps run unmodified against a stand-in Docker Engine (tests/support).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.settings import PREFECT_API_KEY, temporary_settings
from prefect.states import Scheduled
from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

from blocks import DuckDBWarehouse
from demo.data import generate_jaffle_shop
from deployments.declarations import all_environments
from deployments.work_pools import (
    DeploySettingError,
    apply_work_pool,
    base_job_template,
    deploy_environment,
)
from flows.backfill import window_of_days
from tests.conftest import REPO_ROOT
from tests.support.docker_engine import DockerEngine, running_docker_engine
from tests.support.environments import save_embedded_environment

pytestmark = pytest.mark.usefixtures("prefect_api")

PREFECT_YAML = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
DECLARED = {spec["name"]: spec for spec in PREFECT_YAML["deployments"]}
ENVIRONMENTS = {environment.name: environment for environment in all_environments()}
KUBERNETES_DEPLOYMENTS = sorted(name for name in DECLARED if not name.startswith("local-"))
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
IMAGE_REPOSITORY = "registry.example.com/acme/prefect-elt"
# Stands for the worker's own Prefect Cloud key: it must never reach a Job manifest.
WORKER_API_KEY = "pnu_worker_key_that_must_not_leak_0123456789"
HELM_VALUES = yaml.safe_load((REPO_ROOT / "deployments/kubernetes/worker-values.yaml").read_text())


def git_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def docker_engine() -> Iterator[DockerEngine]:
    with running_docker_engine() as engine:
        yield engine


@pytest.fixture(scope="module")
def deployed(prefect_api: str, docker_engine: DockerEngine) -> dict[str, DeploymentResponse]:
    """Every work pool from deployments/, then `prefect --no-prompt deploy --all`."""
    for environment in ENVIRONMENTS.values():
        apply_work_pool(environment)
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "DOCKER_HOST": docker_engine.url,
        "ELT_IMAGE_REPOSITORY": IMAGE_REPOSITORY,
        "ELT_PROJECT_DIR": str(REPO_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    with get_client(sync_client=True) as client:
        return {
            name: client.read_deployment_by_name(f"{flow_name(spec)}/{name}")
            for name, spec in DECLARED.items()
        }


def flow_name(spec: dict[str, Any]) -> str:
    return spec["entrypoint"].rsplit(":", 1)[1].replace("_", "-")


def test_deploy_all_creates_every_declared_deployment_with_its_schedule_tags_and_limits(
    deployed: dict[str, DeploymentResponse],
) -> None:
    assert len(deployed) == 15
    for name, spec in DECLARED.items():
        deployment = deployed[name]
        environment = name.split("-", 1)[0]
        assert deployment.work_pool_name == ENVIRONMENTS[environment].work_pool.name, name
        assert set(deployment.tags) == {"elt", f"env:{environment}"}, name
        assert deployment.parameters["environment"] == environment, name
        assert deployment.parameters == spec["parameters"], name
        assert deployment.global_concurrency_limit is not None, name
        # The block check only reads: a few at once, so a burst of saves is reported in time.
        assert deployment.global_concurrency_limit.limit == (
            4 if name.endswith("-block-check") else 1
        ), name
        assert deployment.concurrency_options is not None
        assert deployment.concurrency_options.collision_strategy == (
            "CANCEL_NEW" if name.endswith("-hourly") else "ENQUEUE"
        ), name
        declared_variables = json.loads(
            json.dumps(spec["work_pool"].get("job_variables", {}))
            .replace("{{ build-image.image }}", f"{IMAGE_REPOSITORY}:{git_commit()}")
            .replace("{{ $ELT_PROJECT_DIR }}", str(REPO_ROOT))
        )
        assert deployment.job_variables == declared_variables, name
        schedules = [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules]  # type: ignore[union-attr]
        expected = [(s["cron"], s["timezone"]) for s in spec.get("schedules", [])]
        assert schedules == expected, name
    assert deployed["prod-daily"].schedules[0].schedule.timezone == "Europe/Amsterdam"  # type: ignore[union-attr]
    assert deployed["prod-daily"].schedules[0].active


def test_kubernetes_deployments_run_the_commit_tagged_image_in_their_environment_namespace(
    deployed: dict[str, DeploymentResponse],
) -> None:
    image = f"{IMAGE_REPOSITORY}:{git_commit()}"
    for name in KUBERNETES_DEPLOYMENTS:
        variables = deployed[name].job_variables or {}
        environment = name.split("-", 1)[0]
        assert variables["image"] == image, name
        assert variables["namespace"] == f"elt-{environment}", name
        assert variables["service_account_name"] == "elt-flows", name
        assert {"cpu_request", "memory_request", "cpu_limit", "memory_limit"} <= set(variables)
        assert deployed[name].pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/prefect/elt"}}
        ]
    # The loads get more memory than the transform, per environment, by override.
    assert deployed["prod-hourly"].job_variables["memory_limit"] == "4Gi"  # type: ignore[index]
    assert deployed["prod-on-demand"].job_variables["memory_limit"] == "2Gi"  # type: ignore[index]


def test_deploy_builds_the_dockerfile_once_from_a_clean_context_and_pushes_the_commit_tag(
    deployed: dict[str, DeploymentResponse], docker_engine: DockerEngine
) -> None:
    assert len(docker_engine.builds) == 1, "every deployment shares one image build"
    build = docker_engine.builds[0]
    assert build.params["dockerfile"] == "Dockerfile"
    assert build.params["platform"] == "linux/amd64"
    assert build.dockerfile == (REPO_ROOT / "Dockerfile").read_text()
    assert {
        "Dockerfile",
        "pyproject.toml",
        "uv.lock",
        "flows/elt.py",
        "blocks/warehouse.py",
        "dbt/dbt_project.yml",
        "pipeline/loading.py",
        "demo/data.py",
        "deployments/setup.py",
        "deployments/environments/prod.yaml",
    } <= set(build.context_files)
    leaked = [
        f
        for f in build.context_files
        if f.split("/")[0] in {".git", ".venv", ".tools", ".prefect", "data", ".pytest_cache"}
        or f.endswith((".pem", ".p8", ".env", ".duckdb"))
    ]
    assert leaked == [], "the build context must hold no local state or keys"
    assert docker_engine.pushes == [f"{IMAGE_REPOSITORY}:{git_commit()}"]


def test_every_entrypoint_imports_and_takes_the_declared_parameters(
    deployed: dict[str, DeploymentResponse],
) -> None:
    from prefect.flows import load_flow_from_entrypoint

    for name, spec in DECLARED.items():
        flow = load_flow_from_entrypoint(str(REPO_ROOT / spec["entrypoint"]))
        accepted = set(deployed[name].parameter_openapi_schema["properties"])  # type: ignore[index]
        assert set(spec["parameters"]) <= accepted, (name, flow.name)


async def render_job_manifest(deployment: DeploymentResponse) -> tuple[dict[str, Any], bool]:
    """The Job a Kubernetes worker would submit for a new run of `deployment`.

    The rendering process holds an API key, as the worker does; the Helm values make the worker
    swap it for a reference to its Secret, which is applied here with the worker's own code.
    Also returns whether the key was in the manifest before that swap.
    """
    env_vars = {e["name"]: e["value"] for e in HELM_VALUES["worker"]["extraEnvVars"]}
    async with get_client() as client:
        work_pool = await client.read_work_pool(deployment.work_pool_name)  # type: ignore[arg-type]
        required = deployment.parameter_openapi_schema.get("required", [])  # type: ignore[union-attr]
        flow_run: FlowRun = await client.create_flow_run_from_deployment(
            deployment.id,
            parameters={name: "2025-01-01" for name in required},  # the backfill's days
            state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=365)),
        )
        try:
            with temporary_settings({PREFECT_API_KEY: WORKER_API_KEY}):
                configuration = await KubernetesWorkerJobConfiguration.resolve_for_flow_run(
                    flow_run,
                    client=client,
                    work_pool=work_pool,
                    worker_name="k8s-worker",
                    deployment=deployment,
                )
            key_before_swap = WORKER_API_KEY in json.dumps(configuration.job_manifest)
            worker = KubernetesWorker(work_pool_name=work_pool.name)
            await worker._replace_api_key_with_secret(
                configuration,
                client=None,  # type: ignore[arg-type]  # only used to create a secret, not here
                secret_name=env_vars["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME"],
                secret_key=env_vars["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_KEY"],
            )
        finally:
            await client.delete_flow_run(flow_run.id)
    return configuration.job_manifest, key_before_swap


@pytest.mark.parametrize("name", KUBERNETES_DEPLOYMENTS)
def test_the_job_a_kubernetes_worker_renders_validates_strictly_runs_non_root_and_holds_no_secret(
    deployed: dict[str, DeploymentResponse], name: str
) -> None:
    manifest, key_before_swap = asyncio.run(render_job_manifest(deployed[name]))
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)

    job = manifest["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert job["backoffLimit"] == 0 and job["ttlSecondsAfterFinished"] > 0
    assert job["completions"] == 1 and job["parallelism"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert container["image"] == f"{IMAGE_REPOSITORY}:{git_commit()}"
    assert manifest["metadata"]["namespace"] == f"elt-{name.split('-', 1)[0]}"

    assert key_before_swap, "the worker renders its own key; the Helm values' setting removes it"
    assert WORKER_API_KEY not in json.dumps(manifest)
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["PREFECT_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": HELM_VALUES["worker"]["cloudApiConfig"]["apiKeySecret"]["name"],
        "key": HELM_VALUES["worker"]["cloudApiConfig"]["apiKeySecret"]["key"],
    }
    secretish = [
        n
        for n, e in env.items()
        if "value" in e
        and any(word in n for word in ("KEY", "PASSWORD", "TOKEN", "SECRET", "AUTH"))
    ]
    assert secretish == [], "secrets reach pods through Secrets and blocks, never as values"


@pytest.fixture
def local_environment(tmp_path: Path) -> tuple[str, Path, DuckDBWarehouse]:
    """An environment of the test's own (DuckDB file, demo data): the run touches no repo file."""
    name, warehouse = save_embedded_environment("pool", tmp_path)
    generate_jaffle_shop(tmp_path / "jaffle", days=4, orders_per_day_at_start=40)
    return name, tmp_path / "jaffle", warehouse


def wait_for_final_state(
    flow_run_id: uuid.UUID, worker: subprocess.Popen[str], seconds: float
) -> FlowRun:
    deadline = time.monotonic() + seconds
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            flow_run = client.read_flow_run(flow_run_id)
            if flow_run.state and flow_run.state.is_final():
                return flow_run
            assert worker.poll() is None, "the process worker exited"
            time.sleep(1)
    raise AssertionError(f"flow run not finished within {seconds} s (state {flow_run.state})")


def stop_worker(worker: subprocess.Popen[str]) -> None:
    """Stop `prefect worker` as Kubernetes stops its pod: SIGTERM, then SIGKILL if it is still
    running 30 s later. Never leave it running to take later tests' flow runs."""
    # Seen once in CI (Prefect 3.8.8): on SIGTERM the worker logged that it sent itself SIGINT,
    # then kept polling and took new runs for 13 minutes, until the session's server stopped.
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=30)


def test_a_process_worker_runs_a_scheduled_local_deployment_to_completion(
    deployed: dict[str, DeploymentResponse],
    local_environment: tuple[str, Path, DuckDBWarehouse],
    prefect_api: str,
    tmp_path: Path,
) -> None:
    """The backfill deployment (backfill → elt → extract-load and dbt) under `prefect worker`."""
    name, data_dir, warehouse = local_environment
    deployment = deployed["local-window"]
    first_day, last_day = date(2025, 1, 2), date(2025, 1, 3)
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={
                "first_day": first_day.isoformat(),
                "last_day": last_day.isoformat(),
                "environment": name,
                "data_dir": str(data_dir),
            },
            state=Scheduled(scheduled_time=datetime.now(UTC)),
        )
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            ENVIRONMENTS["local"].work_pool.name,
            "--type",
            "process",
            "--limit",
            "1",
        ],
        cwd=tmp_path,
        env={**os.environ, "PREFECT_API_URL": prefect_api},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        finished = wait_for_final_state(flow_run.id, worker, seconds=240)
    finally:
        stop_worker(worker)
        log.close()
    worker_log = (tmp_path / "worker.log").read_text()[-3000:]
    assert finished.state is not None and finished.state.is_completed(), worker_log
    assert set(finished.tags) >= {"env:local"}
    with warehouse.fresh() as own:
        days = own.query("SELECT MIN(ordered_at)::DATE, MAX(ordered_at)::DATE FROM raw.raw_orders")
        (orders,) = own.query("SELECT COUNT(*) FROM analytics.orders")[0]
    assert days == [(first_day, last_day)], "a backfill loads its window only"
    assert orders > 0


def test_a_backfill_window_spans_whole_days_and_refuses_an_inverted_one() -> None:
    window = window_of_days(date(2024, 1, 1), date(2024, 1, 2))
    assert window.since == datetime(2024, 1, 1, 0, 0)
    assert window.until is not None and window.until.date() == date(2024, 1, 2)
    assert window.until.hour == 23 and window.until.minute == 59
    with pytest.raises(ValueError, match="last_day 2024-01-01 is before first_day 2024-01-02"):
        window_of_days(date(2024, 1, 2), date(2024, 1, 1))


def test_setup_refuses_to_deploy_to_kubernetes_without_an_image_repository() -> None:
    with pytest.raises(DeploySettingError, match="set ELT_IMAGE_REPOSITORY"):
        deploy_environment(ENVIRONMENTS["prod"], environ={})


def test_applying_a_work_pool_again_updates_it_in_place(prefect_api: str) -> None:
    staging = ENVIRONMENTS["staging"]
    assert apply_work_pool(staging) == apply_work_pool(staging) == "elt-staging"
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("elt-staging")
    assert pool.type == "kubernetes"
    assert pool.base_job_template == base_job_template(ENVIRONMENTS["staging"])


def test_the_helm_values_point_the_worker_at_the_secret_the_job_template_reads() -> None:
    template = base_job_template(ENVIRONMENTS["prod"])["variables"]["properties"]
    secret = HELM_VALUES["worker"]["cloudApiConfig"]["apiKeySecret"]
    assert (
        template["api_key_secret_name"]["default"],
        template["api_key_secret_key"]["default"],
    ) == (secret["name"], secret["key"])
    assert HELM_VALUES["worker"]["config"]["type"] == "kubernetes"
    assert HELM_VALUES["worker"]["image"]["prefectTag"].startswith(_locked_prefect_version())


def _locked_prefect_version() -> str:
    lock = (REPO_ROOT / "uv.lock").read_text()
    return lock.split('name = "prefect"\nversion = "', 1)[1].split('"', 1)[0]


def test_the_job_template_runs_pods_as_the_images_non_root_user() -> None:
    dockerfile_user = (REPO_ROOT / "Dockerfile").read_text().split("\nUSER ", 1)[1].split()[0]
    uid, gid = (int(part) for part in dockerfile_user.split(":"))
    manifest = base_job_template(ENVIRONMENTS["prod"])["job_configuration"]["job_manifest"]
    pod = manifest["spec"]["template"]["spec"]
    assert uid != 0
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
