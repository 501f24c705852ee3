"""The block check: run by an automation right after a block document of this project is saved."""

from __future__ import annotations

from prefect import flow

from pipeline.block_check import check_saved_document


# No alert hooks: the check reports what it finds itself, and a failed check is that report.
@flow(name="block-check", log_prints=True)
def block_check(
    environment: str = "local", block_document_id: str = "", how: str = "saved", event_id: str = ""
) -> str:
    """Load the saved document (and the environment using it) as a run would, and compare the
    save (the event `event_id`; the latest when empty) with the two before it; alert through
    the environment's alerts naming document, field and fix, or each string field put back."""
    return check_saved_document(environment, block_document_id, how, event_id)


if __name__ == "__main__":
    block_check()
