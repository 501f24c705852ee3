"""The image built for real, and the main job run inside it the way its Kubernetes Job runs it.

buildah (vfs storage, chroot isolation, no Docker engine) builds the Dockerfile unmodified from a
copy of the checkout with keys and local state planted in it, on a stand-in base image made from
Debian packages (deployments/image/stand_in_base.sh). The `elt` flow then runs in the image with
the rendered Job's user, env, command and emptyDir volumes against this session's Prefect server,
and nothing outside those volumes may change. Every layer is searched for the planted secrets.

Slow, about 15 minutes on 2 cores: vfs copies the whole root filesystem for every layer, the image
is built twice (fresh, then after a one-line code change), its layers are exported and read, and a
machine without the stand-in base spends about 3 minutes more making it. Needs root, buildah and
mmdebstrap: skipped without them, unless ELT_REQUIRE_IMAGE is set (as CI does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pyarrow.parquet as pq
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.states import Pending
from prefect.utilities.callables import parameter_schema
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

from blocks import DuckDBWarehouse
from demo.data import generate_jaffle_shop
from deployments.declarations import all_environments
from deployments.work_pools import apply_work_pool
from flows.elt import elt
from tests.conftest import REPO_ROOT
from tests.support.environments import save_environment
from tests.support.image import (
    BuiltImage,
    ImageToolError,
    JobContainer,
    build_image,
    buildah,
    changed_paths,
    copy_build_context,
    empty_dir_volumes,
    ensure_stand_in_base,
    export_layers,
    filesystem_state,
    home_of,
    image_build_unavailable,
    image_size,
    job_container,
    layer_findings,
    run_as_job,
    working_container,
)

pytestmark = [pytest.mark.server, pytest.mark.timeout(3600)]

IMAGE = "localhost/prefect-elt:test"
REBUILT_IMAGE = "localhost/prefect-elt:test-rebuilt"
WORKDIR = "/opt/prefect/elt"
# The deployment whose Job the test runs: the main job as prod schedules it.
JOB = "prod-daily"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
DEPENDENCY_LAYER = "--no-install-project"
SENTINEL = f"elt-image-sentinel-{uuid.uuid4().hex}"
# Stands for the Prefect Cloud key in the Kubernetes Secret the Job template reads.
API_KEY = f"pnu_{SENTINEL}"
# buildah puts its /run/.containerenv in place for each command and takes it away: the runtime
# changes /run's own timestamp, as a pod's runtime does (what is inside /run is still compared).
RUNTIME_MANAGED = {"run"}


def private_key(label: str) -> str:
    return f"-----BEGIN PRIVATE KEY-----\n{SENTINEL}-{label}\n-----END PRIVATE KEY-----\n"


# Keys and local state a developer's checkout may hold; none of it may reach a layer.
PLANTED = {
    ".env": f"SNOWFLAKE_PRIVATE_KEY_PASSPHRASE={SENTINEL}-env\n",
    "dbt/.env": f"DBT_CLOUD_API_KEY={SENTINEL}-dbt-env\n",
    "rsa_key.p8": private_key("p8"),
    "deployments/snowflake_key.pem": private_key("pem"),
    "keys/prod/snowflake.key": private_key("key"),
    "keys/rsa_key.p8": private_key("nested-p8"),
    "config/secrets.env": f"SLACK_WEBHOOK_URL=https://hooks.slack.com/{SENTINEL}-secrets-env\n",
    "dbt/.env.local": f"DBT_CLOUD_API_KEY={SENTINEL}-env-local\n",
    ".prefect/profiles.toml": f'[profiles.cloud]\nPREFECT_API_KEY = "{SENTINEL}-profile"\n',
    "data/jaffle/raw_customers.csv": f"id,name\n1,{SENTINEL}-data\n",
    "dbt/target/run_results.json": f'{{"sentinel": "{SENTINEL}-target"}}\n',
    "dbt/logs/dbt.log": f"{SENTINEL}-log\n",
    ".venv/pyvenv.cfg": f"home = /{SENTINEL}-venv\n",
    ".git/config": f'[remote "origin"]\n\turl = https://x:{SENTINEL}-git@example.com/r.git\n',
}


def report(config: pytest.Config, line: str) -> None:
    """Print a measurement in the test log, whether or not output is captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"[image] {line}")


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout as git sees it, plus keys and local state planted where people keep them."""
    reason = image_build_unavailable()
    if reason:
        if os.environ.get("ELT_REQUIRE_IMAGE"):
            pytest.fail(f"ELT_REQUIRE_IMAGE is set but {reason}")
        pytest.skip(reason)
    context = copy_build_context(tmp_path_factory.mktemp("build-context"))
    for relative, content in PLANTED.items():
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        (context / relative).write_text(content)
    return context


@pytest.fixture(scope="module")
def built_image(build_context: Path, pytestconfig: pytest.Config) -> Iterator[BuiltImage]:
    """The image built fresh (no cached layer) on the stand-in base; removed afterwards."""
    base_seconds = ensure_stand_in_base()
    report(pytestconfig, f"stand-in base ready in {base_seconds:.0f} s")
    try:
        image = build_image(build_context, IMAGE, use_cache=False)
        report(pytestconfig, f"fresh build {image.build_seconds:.0f} s; size {image_size(IMAGE)}")
        for layer in image.layers:
            report(pytestconfig, f"  {layer.diff_id[:19]}  {layer.created_by[-70:]}")
        yield image
    finally:
        remove_test_images()


def remove_test_images() -> None:
    """Delete this module's images and the build cache they left (vfs keeps whole copies)."""
    for tag in (IMAGE, REBUILT_IMAGE):
        with contextlib.suppress(ImageToolError):  # never built: an earlier step failed
            buildah("rmi", "--force", tag)
    buildah("rmi", "--prune")


def create_image_deployment(image: str, environment: str) -> uuid.UUID:
    """prefect.yaml's main prod job, on prod's Kubernetes pool, running `image` in `environment`."""
    spec = next(
        d
        for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
        if d["name"] == JOB
    )
    prod = next(e for e in all_environments() if e.name == "prod")
    pool = apply_work_pool(prod)
    job_variables = {**spec["work_pool"]["job_variables"], "image": image}
    with get_client(sync_client=True) as client:
        return client.create_deployment(
            client.create_flow_from_name(elt.name),
            name=f"{JOB}-{environment}",
            entrypoint=spec["entrypoint"],
            work_pool_name=pool,
            job_variables=job_variables,
            parameters={"environment": environment, "data_dir": "data/jaffle"},
            pull_steps=spec["pull"],
            parameter_openapi_schema=parameter_schema(elt).model_dump(),
        )


async def submitted_job_manifest(deployment_id: uuid.UUID) -> tuple[uuid.UUID, dict[str, Any]]:
    """A new run of the deployment, made Pending as a worker does, and the Job it renders."""
    async with get_client() as client:
        deployment = await client.read_deployment(deployment_id)
        flow_run = await client.create_flow_run_from_deployment(deployment_id)
        await client.set_flow_run_state(flow_run.id, Pending())
        work_pool = await client.read_work_pool(deployment.work_pool_name)  # type: ignore[arg-type]
        configuration = await KubernetesWorkerJobConfiguration.resolve_for_flow_run(
            flow_run, client=client, work_pool=work_pool, worker_name="image-test",
            deployment=deployment,
        )  # fmt: skip
    return flow_run.id, configuration.job_manifest


def run_user(job: JobContainer) -> tuple[int, int]:
    uid, gid = (int(part) for part in job.user.split(":"))
    return uid, gid


def files_holding(root: Path, needle: str) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and needle.encode() in path.read_bytes()
    ]


def test_the_elt_job_runs_in_the_image_as_its_kubernetes_job_writing_only_its_volumes(
    built_image: BuiltImage, prefect_api: str, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    environment = f"image-{uuid.uuid4().hex[:8]}"
    save_environment(environment)  # the embedded default: DuckDB under data/, the image's dbt/
    flow_run_id, manifest = asyncio.run(
        submitted_job_manifest(create_image_deployment(built_image.tag, environment))
    )
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)
    job = job_container(manifest)
    assert job.read_only_root, "the Job template must set readOnlyRootFilesystem"
    assert "PREFECT_API_KEY" in job.secret_refs, "the API key comes from a Secret"
    uid, gid = run_user(job)
    volumes = empty_dir_volumes(tmp_path / "volumes", job.writable, uid, gid)
    data = volumes["data"]
    generate_jaffle_shop(data / "jaffle", days=4, orders_per_day_at_start=40)
    secrets = {job.secret_refs["PREFECT_API_KEY"]: API_KEY}

    with working_container(built_image.tag) as (container, rootfs):
        home = home_of(rootfs, uid)
        # A first command lets buildah make its own mount points before the "before" picture.
        warm_up = run_as_job(
            container, job, volumes=volumes, secrets=secrets, home=home, args=["true"]
        )
        assert warm_up.returncode == 0, warm_up.stderr[-3000:]
        before = filesystem_state(rootfs)
        ran = run_as_job(container, job, volumes=volumes, secrets=secrets, home=home)
        after = filesystem_state(rootfs)
    report(pytestconfig, f"{' '.join(job.args)} as {job.user} in the image: exit {ran.returncode}")
    output = (ran.stdout[-4000:] + ran.stderr[-4000:]).strip()
    assert ran.returncode == 0, output
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
    assert state is not None and state.is_completed(), f"{state}\n{output}"

    changed = [path for path in changed_paths(before, after) if path not in RUNTIME_MANAGED]
    assert changed == [], "the run wrote outside the Job's emptyDir volumes"
    assert (volumes["dbt-target"] / "run_results.json").is_file()
    assert any(volumes["dbt-logs"].iterdir()), "dbt logs go to DBT_LOG_PATH"
    assert files_holding(tmp_path / "volumes", SENTINEL) == [], "the API key was written down"

    raw = data / "jaffle"
    orders = pq.ParquetFile(raw / "raw_orders.parquet").metadata.num_rows
    customers = pq.ParquetFile(raw / "raw_customers.parquet").metadata.num_rows
    with DuckDBWarehouse(path=str(data / "warehouse.duckdb")).fresh() as warehouse:
        assert warehouse.query("SELECT COUNT(*) FROM analytics.orders") == [(orders,)]
        assert warehouse.query("SELECT COUNT(*) FROM analytics.customers") == [(customers,)]
        assert warehouse.query("SELECT SUM(count_lifetime_orders) FROM analytics.customers") == [
            (orders,)
        ]


def test_no_layer_holds_a_planted_secret_key_or_local_state(
    built_image: BuiltImage, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    layers = export_layers(built_image.tag, tmp_path / "oci")
    assert len(layers) == len(built_image.layers), "one exported tarball per layer of the image"
    sizes = ", ".join(f"{path.stat().st_size / 1e6:.0f}" for path in layers)
    report(pytestconfig, f"layers (MB, bottom first): {sizes}")
    findings = [
        f"layer {index} ({built_image.layers[index].created_by[-50:]}): {finding}"
        for index, tarball in enumerate(layers)
        for finding in layer_findings(tarball, SENTINEL.encode(), WORKDIR)
    ]
    assert findings == []


def test_a_one_line_code_change_rebuilds_on_the_cached_dependency_layer(
    built_image: BuiltImage, build_context: Path, pytestconfig: pytest.Config
) -> None:
    flow = build_context / "flows/elt.py"
    flow.write_text(flow.read_text() + "# A one-line code change: the dependencies stay cached.\n")
    rebuilt = build_image(build_context, REBUILT_IMAGE, use_cache=True)
    dependencies = built_image.layer_made_by(DEPENDENCY_LAYER)
    report(
        pytestconfig,
        f"rebuild after a code change {rebuilt.build_seconds:.0f} s; dependency layer "
        f"{dependencies.diff_id} before, {rebuilt.layer_made_by(DEPENDENCY_LAYER).diff_id} after",
    )
    below = built_image.layers.index(dependencies) + 1
    assert rebuilt.layers[:below] == built_image.layers[:below]
    assert rebuilt.layers[-1].diff_id != built_image.layers[-1].diff_id, "the code layer is new"
