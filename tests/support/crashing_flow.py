"""A project flow served by a Runner so a test can kill its run's process (`--hooks`: with the
project's alert hooks, as the real flows have them)."""

import sys
import time

from prefect import flow

from pipeline.alerting import FLOW_HOOKS


def long_load(environment: str) -> None:
    time.sleep(120)


if __name__ == "__main__":
    environment, hooks = sys.argv[1], "--hooks" in sys.argv
    served = flow(long_load, name="extract-load", **(FLOW_HOOKS if hooks else {}))
    served.serve(
        name="crash-test", parameters={"environment": environment}, tags=[f"env:{environment}"]
    )
