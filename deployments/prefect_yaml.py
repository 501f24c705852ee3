"""Render prefect.yaml from the environments and jobs declared in deployments/.

`python -m deployments.prefect_yaml` (or `make prefect.yaml`) writes it; `--check` fails when the
checked-in file differs, which the tests and `setup --deploy` check too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from deployments.declarations import Environment, all_environments, jobs

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"
PREFECT_VERSION = "3.8.8"
HEADER = """\
# Rendered by `make prefect.yaml` from deployments/environments/*.yaml and deployments/jobs.yaml:
# edit those, not this file (a test fails when it is out of date). It stays the entry point of
# `prefect deploy`:
#
#   python -m deployments.setup --environment prod --deploy   # blocks, automations, pool, deploy
#   prefect --no-prompt deploy --name 'prod-*'                 # just the deployments
#
# Each job has one deployment per environment, named `<environment>-<job>`.
"""


def render_deployments(environments: list[Environment], declared: dict[str, Any]) -> list[dict]:
    """One deployment per environment and job, everything spelled out."""
    rendered = []
    for environment in environments:
        for job_name, job in declared["jobs"].items():
            rendered.append(render_deployment(environment, job_name, job, declared))
    return rendered


def render_deployment(
    environment: Environment, job_name: str, job: dict[str, Any], declared: dict[str, Any]
) -> dict[str, Any]:
    """The deployment `<environment>-<job>`: the job's shape, the environment's place."""
    parameters = {"environment": environment.name, **environment.parameters}
    deployment: dict[str, Any] = {
        "name": f"{environment.name}-{job_name}",
        "entrypoint": job["entrypoint"],
        "description": job["description"],
        "tags": ["elt", f"env:{environment.name}"],
        "parameters": {key: parameters[key] for key in job["parameters"] if key in parameters},
    }
    if job.get("schedules"):
        deployment["schedules"] = job["schedules"]
    deployment["concurrency_limit"] = job["concurrency_limit"]
    if environment.runs_on_kubernetes:
        image = declared["image"]
        deployment.update(build=image["build"], push=image["push"], pull=image["pull"])
        job_variables = {
            **declared["kubernetes_job_variables"],
            **environment.work_pool.job_variables,
            **job.get("kubernetes_job_variables", {}),
        }
    else:
        # A process pool runs from this checkout, whose path `make deploy-local` passes.
        deployment.update(pull=[])
        job_variables = {"working_dir": "{{ $ELT_PROJECT_DIR }}",
                         **environment.work_pool.job_variables}  # fmt: skip
    deployment["work_pool"] = {"name": environment.work_pool.name, "job_variables": job_variables}
    return deployment


def render() -> str:
    """prefect.yaml's text."""
    document = {
        "name": "prefect-elt",
        "prefect-version": PREFECT_VERSION,
        "deployments": render_deployments(all_environments(), jobs()),
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=100)


def check_prefect_yaml(path: Path = PREFECT_YAML) -> str:
    """'' when prefect.yaml is what the declarations render, else what to do."""
    if path.exists() and path.read_text() == render():
        return ""
    return (
        "prefect.yaml is out of date with deployments/environments/ and deployments/jobs.yaml: "
        "run `make prefect.yaml` and commit it"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render prefect.yaml from deployments/.")
    parser.add_argument("--check", action="store_true", help="fail when prefect.yaml is stale")
    args = parser.parse_args(argv)
    if args.check:
        problem = check_prefect_yaml()
        print(problem or "prefect.yaml is up to date", file=sys.stderr if problem else sys.stdout)
        return 1 if problem else 0
    PREFECT_YAML.write_text(render())
    print(f"wrote {PREFECT_YAML.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
