"""The block-check flow served as `block-check/<environment>-block-check`, the name prefect.yaml
gives it, so the automation runs it without a worker or a deploy."""

import sys

from flows.block_check import block_check

if __name__ == "__main__":
    environment = sys.argv[1]
    block_check.serve(
        name=f"{environment}-block-check",
        parameters={"environment": environment},
        tags=["elt", f"env:{environment}"],
    )
