"""A project flow with no hooks, served by a Runner so a test can kill its run's process."""

import sys
import time

from prefect import flow


@flow(name="extract-load")
def long_load(environment: str) -> None:
    time.sleep(120)


if __name__ == "__main__":
    environment = sys.argv[1]
    long_load.serve(
        name="crash-test", parameters={"environment": environment}, tags=[f"env:{environment}"]
    )
