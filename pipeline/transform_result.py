"""What a transform (dbt Core or a dbt Cloud job) did: one typed row per node, and its failure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class NodeStatus(StrEnum):
    """What a dbt node's outcome means for the run, whatever dbt status word reported it."""

    FAILED = "failed"
    WARNED = "warned"
    SKIPPED = "skipped"
    PASSED = "passed"


# dbt's NodeStatus words (dbt.artifacts.schemas.results) as dbt Core and run_results.json give them.
DBT_STATUSES: dict[str, NodeStatus] = {
    "success": NodeStatus.PASSED,
    "pass": NodeStatus.PASSED,
    "warn": NodeStatus.WARNED,
    "partial success": NodeStatus.WARNED,  # a microbatch model with some batches failed
    "error": NodeStatus.FAILED,
    "fail": NodeStatus.FAILED,
    "runtime error": NodeStatus.FAILED,
    "skipped": NodeStatus.SKIPPED,
    "no-op": NodeStatus.SKIPPED,
}
STATUS_ORDER = {status: rank for rank, status in enumerate(NodeStatus)}  # failures first
TEST_COUNTS = {
    NodeStatus.PASSED: "tests_passed",
    NodeStatus.WARNED: "tests_warned",
    NodeStatus.FAILED: "tests_failed",
}
TEST_PREFIXES = ("test.", "unit_test.")


def classify_status(dbt_status: object) -> NodeStatus:
    """passed / warned / failed / skipped for a dbt status; an unknown word counts as failed."""
    word = str(getattr(dbt_status, "value", dbt_status)).strip().lower()
    # Unknown words (a newer dbt) are shown as failures rather than hidden among the passes.
    return DBT_STATUSES.get(word, NodeStatus.FAILED)


def first_line(message: object) -> str:
    """The first non-blank line of a dbt message; "" for None or a blank message."""
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def whole_message(message: object) -> str:
    """Every non-blank line of a dbt message (the cause is often on the second); "" for None."""
    return "\n".join(line.rstrip() for line in str(message or "").splitlines() if line.strip())


@dataclass(frozen=True)
class NodeResult:
    """One model, test, seed, snapshot or source of a dbt run, and how it ended."""

    unique_id: str
    status: NodeStatus
    dbt_status: str
    seconds: float = 0.0
    message: str = ""  # the first line, for tables
    full_message: str = ""  # every line, for failure messages

    @classmethod
    def of(
        cls, unique_id: object, dbt_status: object, seconds: float | None, message: object
    ) -> NodeResult:
        """A row from dbt's raw values, whichever path (typed or JSON) they came from."""
        return cls(
            unique_id=str(unique_id or ""),
            status=classify_status(dbt_status),
            dbt_status=str(getattr(dbt_status, "value", dbt_status) or ""),
            seconds=round(float(seconds or 0.0), 2),
            message=first_line(message),
            full_message=whole_message(message),
        )

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> NodeResult:
        """A row of run_results.json's `results` (as dbt Cloud serves it)."""
        return cls.of(
            result.get("unique_id"),
            result.get("status"),
            result.get("execution_time"),
            result.get("message"),
        )

    @property
    def is_test(self) -> bool:
        return self.unique_id.startswith(TEST_PREFIXES)

    @property
    def is_model(self) -> bool:
        return self.unique_id.startswith("model.")

    def describe(self) -> str:
        """`unique_id: first line of the message`, or the id alone when dbt said nothing."""
        return f"{self.unique_id}: {self.message}" if self.message else self.unique_id


def nodes_from_run_results(run_results: Mapping[str, Any]) -> list[NodeResult]:
    """The typed rows of a parsed run_results.json; {} (no artifact) gives none."""
    return [NodeResult.from_json(result) for result in run_results.get("results") or []]


@dataclass
class TransformResult:
    """What dbt did, for artifacts, the ELT summary and failure messages."""

    runner: str
    nodes: list[NodeResult] = field(default_factory=list)
    seconds: float = 0.0
    run_url: str = ""
    artifact_links: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown with the artifact links
    scope: str = "everything"  # everything, downstream (of sources with rows), retry, nothing
    scope_reason: str = ""  # why, in words for the summary

    @property
    def scope_text(self) -> str:
        """What was built and why, e.g. `nothing rebuilt: no source received rows ...`."""
        words = {
            "everything": "built everything",
            "downstream": "built only what changed",
            "retry": "re-ran only what failed",
            "nothing": "nothing rebuilt",
        }.get(self.scope, self.scope)
        return f"{words}: {self.scope_reason}" if self.scope_reason else words

    @property
    def artifact_key(self) -> str:
        """Prefix of this runner's artifact keys: `dbt-core` or `dbt-cloud`."""
        return self.runner.lower().replace(" ", "-")

    @property
    def failures(self) -> list[str]:
        """Each failed node with the first line of its message."""
        return [
            node.describe() for node in self.ordered_nodes() if node.status is NodeStatus.FAILED
        ]

    @property
    def counts(self) -> dict[str, int]:
        """Models built; tests passed, warned and failed; other nodes that failed."""
        tallies = dict.fromkeys(("models", *TEST_COUNTS.values(), "errors"), 0)
        for node in self.nodes:
            if node.is_test:
                if node.status in TEST_COUNTS:
                    tallies[TEST_COUNTS[node.status]] += 1
            elif node.status is NodeStatus.FAILED:
                tallies["errors"] += 1
            elif node.is_model and node.status is NodeStatus.PASSED:
                tallies["models"] += 1
        return tallies

    def ordered_nodes(self) -> list[NodeResult]:
        """Failures first, then warnings, skips and passes; by unique_id within each."""
        return sorted(self.nodes, key=lambda node: (STATUS_ORDER[node.status], node.unique_id))


class TransformError(RuntimeError):
    """dbt failed; carries what it did so far so artifacts and alerts can name the failures."""

    def __init__(self, message: str, result: TransformResult) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the result when Prefect pickles the exception into a task's or flow's state.
        return (type(self), (str(self), self.result))

    @property
    def run_url(self) -> str:
        """The dbt Cloud run's page, which the alert links to ("" for dbt Core)."""
        return self.result.run_url

    @property
    def failures(self) -> list[str]:
        return self.result.failures
