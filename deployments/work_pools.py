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
from prefect.workers.process import ProcessWorker

REPO_ROOT = Path(__file__).resolve().parents[1]
KUBERNETES_TEMPLATE = Path(__file__).parent / "kubernetes" / "base-job-template.yaml"
LOCAL = "local"


class DeploySettingError(ValueError):
    """A setting `prefect deploy` needs is missing or wrong; the message names the fix."""


def pool_name(environment: str) -> str:
    return f"elt-{environment}"


def pool_type(environment: str) -> str:
    """Kubernetes everywhere except `local`, which runs flows as processes on this machine."""
    return "process" if environment == LOCAL else "kubernetes"


def base_job_template(environment: str) -> dict[str, Any]:
    """The pool's template: the project's Kubernetes Job, or the process worker's default."""
    if pool_type(environment) == "kubernetes":
        template: dict[str, Any] = yaml.safe_load(KUBERNETES_TEMPLATE.read_text())
        return template
    return ProcessWorker.get_default_base_job_template()


def apply_work_pool(environment: str) -> str:
    """Create the environment's work pool, or bring an existing one's template up to date."""
    name, kind, template = (
        pool_name(environment),
        pool_type(environment),
        base_job_template(environment),
    )
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(name=name, type=kind, base_job_template=template)
            )
            return name
        if existing.type != kind:
            raise DeploySettingError(
                f"work pool {name!r} exists with type {existing.type!r}, but environment "
                f"{environment!r} needs a {kind!r} pool: delete it "
                f"(`prefect work-pool delete {name}`) and run setup again"
            )
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
    return name


def deploy_environment(environment: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Run `prefect deploy` for the environment's deployments in prefect.yaml; return the names."""
    prefix = f"{environment}-"
    declared = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
    names = [spec["name"] for spec in declared if spec["name"].startswith(prefix)]
    if not names:
        raise DeploySettingError(
            f"prefect.yaml declares no deployment named {prefix}*: add the environment's "
            "deployments there (copy the staging ones and change the anchors)"
        )
    env = dict(environ)
    if environment == LOCAL:
        env["ELT_PROJECT_DIR"] = str(REPO_ROOT)
    elif not env.get("ELT_IMAGE_REPOSITORY"):
        raise DeploySettingError(
            "set ELT_IMAGE_REPOSITORY to the image repository the cluster pulls from, "
            "e.g. ghcr.io/acme/prefect-elt (prefect.yaml tags the image with the git commit)"
        )
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name", f"{prefix}*"]
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True)
    return names
