"""Set up one environment from its declaration: block documents, automations, work pool, deploys.

Idempotent: run it on every merge. It creates missing documents and changes only the fields the
declaration (deployments/environments/<name>.yaml) sets; secrets come only from variables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping

from blocks import SlackAlerts
from blocks.environment import register_block_types
from deployments.automations import apply_automations, apply_block_check_automations
from deployments.declarations import (
    DeclarationError,
    MissingSettingError,
    load_environment_declaration,
)
from deployments.documents import DocumentError, apply_environment
from deployments.work_pools import DeploySettingError, apply_work_pool, deploy_environment
from pipeline.warehouse_limit import ensure_warehouse_limit

# CI hands the GitHub environment's variables and secrets over as JSON maps, so the workflow
# needn't list them: the declarations say which ones setup reads.
JSON_SETTINGS = ("ELT_CI_VARIABLES", "ELT_CI_SECRETS")


def setup_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables setup reads: the process environment, over CI's JSON maps."""
    merged: dict[str, str] = {}
    for key in JSON_SETTINGS:
        if environ.get(key):
            merged.update({k: str(v) for k, v in json.loads(environ[key]).items() if v})
    merged.update({k: v for k, v in environ.items() if k not in JSON_SETTINGS})
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--environment", default="local", help="a file in deployments/environments/"
    )
    parser.add_argument(
        "--deploy",
        action="store_true",
        help="also create the work pool and run `prefect deploy` for the environment's deployments",
    )
    args = parser.parse_args(argv)
    environ = setup_environ(os.environ)
    try:
        environment = load_environment_declaration(args.environment)
        print(f"Registered block types: {', '.join(register_block_types())}")
        applied = apply_environment(environment, environ)
    except (DeclarationError, MissingSettingError, DocumentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Environment {environment.name!r} (declared in deployments/environments/"
          f"{environment.name}.yaml):")  # fmt: skip
    for plan in applied.plans:
        print(f"  {plan.reference:<40} {plan.action}")
        for change in plan.changes:
            wins = (
                " (the declaration wins over the stored value)" if plan.action == "update" else ""
            )
            print(f"      {change.describe()}{wins}")
    assert applied.environment is not None
    print(f"Warehouse concurrency limit: {ensure_warehouse_limit(environment.name)}")
    if isinstance(applied.environment.alerts, SlackAlerts):
        applied_names = apply_automations(environment.name, applied.environment.alerts)
        print("Automations applied: " + ", ".join(applied_names))
    else:
        print("Automations: skipped, alerts go to the console (automations post to Slack)")
    if args.deploy:
        try:
            print(f"Work pool: {apply_work_pool(environment)} (created or updated)")
            deployed = deploy_environment(environment)
        except DeploySettingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print("Deployed: " + ", ".join(deployed))
    checks = apply_block_check_automations(environment.name)
    print(
        "Block checks after each save: " + ", ".join(checks)
        if checks
        else "Block checks after each save: skipped, no block-check deployment yet (add --deploy)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
