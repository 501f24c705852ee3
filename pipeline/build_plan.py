"""What a dbt Core run builds, decided from facts (pure): everything, only what is downstream of
the sources that received rows, a retry of what failed, or nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Action = Literal["everything", "downstream", "retry", "nothing"]
# Folders under a dbt project that hold what dbt writes or installs, not the project's code.
NOT_CODE = frozenset({"target", "logs", "dbt_packages", "dbt_modules", "__pycache__"})
SELECTING_FLAGS = frozenset({"-s", "--select", "-m", "--models", "--selector", "--exclude"})


@dataclass(frozen=True)
class LastBuild:
    """What the warehouse records of the last dbt Core build into a transform schema."""

    fingerprint: str  # of the project's code and command (project_fingerprint)
    complete: bool  # every selected node passed or warned


@dataclass(frozen=True)
class BuildFacts:
    """What is known before dbt runs."""

    fingerprint: str
    last_build: LastBuild | None = None  # None: no build recorded in this warehouse
    loaded: frozenset[str] | None = None  # raw tables that received rows; None: not known
    full_refresh: bool = False
    selects_itself: bool = False  # the block's command carries its own node selection
    retrying: bool = False  # a retry of this flow run, with the failed attempt's results at hand


@dataclass(frozen=True)
class BuildPlan:
    """What dbt will be asked to do, and why, in words for the run's summary."""

    action: Action
    reason: str
    sources: tuple[str, ...] = ()  # the raw tables whose downstream nodes are built
    full_refresh: bool = False

    def dbt_args(self, command: Sequence[str]) -> list[str]:
        """The dbt arguments that carry out the plan with the block's `command` words."""
        if self.action == "retry":
            return ["retry"]
        if self.action == "downstream":
            selected = " ".join(f"source:*.{table}+" for table in self.sources)
            return [*command, "--select", selected]
        return [*command, "--full-refresh"] if self.full_refresh else list(command)


def plan_build(facts: BuildFacts) -> BuildPlan:
    """Decide what to build from the facts; no dbt or warehouse call."""
    if facts.retrying:
        return BuildPlan("retry", "a retry: dbt re-runs only the nodes that failed or were skipped")
    if facts.full_refresh:
        return BuildPlan("everything", "full refresh", full_refresh=True)
    if facts.selects_itself:
        return BuildPlan("everything", "the block's command selects its own nodes")
    if facts.loaded is None:
        return BuildPlan("everything", "which sources received rows is not known")
    last = facts.last_build
    if last is None:
        return BuildPlan("everything", "no earlier build is recorded in this warehouse")
    if not last.complete:
        return BuildPlan("everything", "the last build did not complete")
    if last.fingerprint != facts.fingerprint:
        return BuildPlan("everything", "the dbt project or command changed since the last build")
    if not facts.loaded:
        return BuildPlan("nothing", "no source received rows since the last complete build")
    loaded = tuple(sorted(facts.loaded))
    said = f"only {', '.join(loaded)} received rows: built what they feed, left the rest as built"
    return BuildPlan("downstream", said, loaded)


def selects_itself(args: Iterable[str]) -> bool:
    """Whether dbt CLI arguments already choose nodes (`--select`, `--exclude`, ...)."""
    return any(arg.split("=", 1)[0] in SELECTING_FLAGS for arg in args)


def loaded_tables(loads: Iterable[object]) -> frozenset[str]:
    """The tables of TableLoad-like results that inserted or updated rows."""
    return frozenset(
        str(load.table)  # type: ignore[attr-defined]
        for load in loads
        if getattr(load, "inserted", 0) or getattr(load, "updated", 0)
    )


def project_fingerprint(project_dir: Path, *salt: str, ignore: Collection[Path] = ()) -> str:
    """A hash of every file of the dbt project (not what dbt writes) and of `salt`."""
    digest = hashlib.sha256("\0".join(salt).encode())
    ignored = {path.resolve() for path in ignore}
    for path in sorted(project_dir.rglob("*")):
        relative = path.relative_to(project_dir)
        if not path.is_file() or NOT_CODE & set(relative.parts) or relative.name.startswith("."):
            continue
        if any(path.resolve().is_relative_to(folder) for folder in ignored):
            continue
        digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
