"""Set up one environment: block types and documents, automations, work pool, deployments.

Idempotent: run it on every merge. Production values come from environment variables
(see README → Production); nothing secret is read from a file in the repository.
"""

from __future__ import annotations

import argparse
import os
import sys

from blocks import SlackAlerts
from blocks.environment import MissingSettingError, environment_blocks, register_block_types
from deployments.automations import apply_automations
from deployments.work_pools import DeploySettingError, apply_work_pool, deploy_environment


def save_environment(name: str) -> dict[str, str]:
    """Create or update the block documents of environment `name`; return slug → document."""
    documents = environment_blocks(name, os.environ)
    for block in documents.values():
        block.save(name, overwrite=True)
    return {slug: f"{slug}/{name}" for slug in documents}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environment", default="local", help="local, staging, prod, ...")
    parser.add_argument(
        "--deploy",
        action="store_true",
        help="also create the work pool and run `prefect deploy` for the environment's deployments",
    )
    args = parser.parse_args(argv)
    print(f"Registered block types: {', '.join(register_block_types())}")
    try:
        saved = save_environment(args.environment)
    except MissingSettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Environment {args.environment!r} uses:")
    for slug, document in saved.items():
        print(f"  {slug:<22} {document}")
    if SlackAlerts.get_block_type_slug() in saved:
        print("Automations applied: " + ", ".join(apply_automations(args.environment)))
    else:
        print("Automations: skipped, alerts go to the console (they need SLACK_WEBHOOK_URL)")
    if args.deploy:
        try:
            print(f"Work pool: {apply_work_pool(args.environment)} (created or updated)")
            deployed = deploy_environment(args.environment)
        except DeploySettingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print("Deployed: " + ", ".join(deployed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
