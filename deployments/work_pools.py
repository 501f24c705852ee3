"""The work pool of each environment, and deploying prefect.yaml's deployments onto it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectNotFound

from deployments.declarations import Environment
from deployments.prefect_yaml import PREFECT_YAML, check_prefect_yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
KUBERNETES_TEMPLATE = Path(__file__).parent / "kubernetes" / "base-job-template.yaml"


class DeploySettingError(ValueError):
    """A setting `prefect deploy` needs is missing or wrong; the message names the fix."""


def base_job_template(environment: Environment) -> dict[str, Any]:
    """The pool's template: the project's Kubernetes Job, or the process worker's default."""
    if environment.runs_on_kubernetes:
        template: dict[str, Any] = yaml.safe_load(KUBERNETES_TEMPLATE.read_text())
        return template
    from prefect.workers.process import ProcessWorker

    return ProcessWorker.get_default_base_job_template()


def apply_work_pool(environment: Environment) -> str:
    """Create the environment's work pool, or bring an existing one's template up to date."""
    pool = environment.work_pool
    template = base_job_template(environment)
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(pool.name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(name=pool.name, type=pool.type, base_job_template=template)
            )
            return pool.name
        if existing.type != pool.type:
            raise DeploySettingError(
                f"work pool {pool.name!r} exists with type {existing.type!r}, but environment "
                f"{environment.name!r} declares a {pool.type!r} pool: delete it "
                f"(`prefect work-pool delete {pool.name}`) and run setup again"
            )
        client.update_work_pool(pool.name, WorkPoolUpdate(base_job_template=template))
    return pool.name


def deploy_environment(
    environment: Environment, environ: Mapping[str, str] = os.environ
) -> list[str]:
    """Run `prefect deploy` for the environment's deployments in prefect.yaml; return the names."""
    stale = check_prefect_yaml()
    if stale:
        raise DeploySettingError(stale)
    prefix = f"{environment.name}-"
    declared = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    names = [spec["name"] for spec in declared if spec["name"].startswith(prefix)]
    env = dict(environ)
    if not environment.runs_on_kubernetes:
        env["ELT_PROJECT_DIR"] = str(REPO_ROOT)
    elif not env.get("ELT_IMAGE_REPOSITORY"):
        raise DeploySettingError(
            "set ELT_IMAGE_REPOSITORY to the image repository the cluster pulls from, "
            "e.g. ghcr.io/acme/prefect-elt (prefect.yaml tags the image with the git commit)"
        )
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name", f"{prefix}*"]
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True)
    return names
