"""Reading what a run published, as a person would see it in the UI."""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import get_client


def latest_artifact(key: str) -> Any:
    """The newest artifact published under `key`; fails naming the key when there is none."""
    with get_client(sync_client=True) as client:
        found = [a for a in client.read_latest_artifacts() if a.key == key]  # type: ignore[attr-defined]
    assert found, f"no artifact {key!r}"
    return found[0]
