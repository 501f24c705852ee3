"""dbt Core project: where the project is and which dbt command runs it."""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from prefect.blocks.core import Block
from pydantic import Field, field_validator

from blocks._form import BLOCK_CONFIG

if TYPE_CHECKING:
    from blocks.warehouse import Warehouse
    from pipeline.transform_result import TransformResult

DBT_COMMANDS = ("build", "run", "test", "seed", "snapshot", "compile")
TARGET_PATTERN = r"^[A-Za-z0-9_-]*$"


class DbtCoreTransform(Block):
    """A dbt Core project in this repository, run in-process; rebuilds only what new rows feed."""

    _block_type_name = "dbt Core Transform"
    _logo_url = "https://images.ctfassets.net/gm98wzqotmnx/5zE9lxfzBHjw3tnEup4wWL/9a001902ed43a84c6c96d23b24622e19/dbt-bit_tm.png?h=250"  # type: ignore[assignment]
    _documentation_url = "https://docs.getdbt.com/reference/dbt-commands"  # type: ignore[assignment]
    _description = (
        "Runs the repository's dbt project with dbt Core against the environment's warehouse; "
        "credentials come from the warehouse block at run time, never from profiles.yml."
    )

    model_config = BLOCK_CONFIG

    # Form order: what people change most first. No property has a schema default (see
    # blocks/_form.py): an empty field takes the default named in its help at load.
    command: str = Field(
        default="build",
        title="dbt command",
        description="The dbt command and its arguments without the leading dbt, e.g. build or "
        "build --select marts+. One of: " + ", ".join(DBT_COMMANDS) + ". Empty: build.",
        min_length=1,
    )
    target: str = Field(
        default="",
        title="Target",
        description="Profile target to use. Empty: the warehouse's own (duckdb or snowflake).",
        json_schema_extra={"pattern": TARGET_PATTERN},
    )
    threads: int = Field(
        default=4,
        title="Threads",
        description="How many models dbt builds at once. Empty: 4.",
        ge=1,
        le=64,
    )
    freshness_gate: bool = Field(
        default=True,
        title="Check source freshness first",
        description="Run dbt source freshness before the command and stop if a source is "
        "stale. Empty: on.",
    )
    project_dir: str = Field(
        default="dbt",
        title="Project folder",
        description="Folder holding dbt_project.yml, relative to the working directory. "
        "Empty: dbt.",
        min_length=1,
    )
    profiles_dir: str = Field(
        default="dbt",
        title="Profiles folder",
        description="Folder holding profiles.yml, which reads credentials from the "
        "environment. Empty: dbt.",
        min_length=1,
    )

    @field_validator("target")
    @classmethod
    def _target_is_a_name(cls, value: str) -> str:
        if not re.fullmatch(TARGET_PATTERN, value):
            raise ValueError(
                f"target {value!r} must be a profile target name such as `duckdb` or `snowflake`"
            )
        return value

    @field_validator("command")
    @classmethod
    def _command_is_a_dbt_command(cls, value: str) -> str:
        words = shlex.split(value)
        if not words or words[0] not in DBT_COMMANDS:
            raise ValueError(
                f"command {value!r} must start with one of {', '.join(DBT_COMMANDS)} "
                "(without the leading `dbt`), e.g. `build --select marts+`"
            )
        return value

    def command_words(self) -> list[str]:
        """The dbt command and its own arguments, e.g. `["build", "--select", "marts+"]`."""
        return shlex.split(self.command)

    def project_args(self) -> list[str]:
        """Project, profiles and threads as dbt CLI arguments (every dbt command takes them)."""
        return [
            "--project-dir",
            str(Path(self.project_dir)),
            "--profiles-dir",
            str(Path(self.profiles_dir)),
            "--threads",
            str(self.threads),
        ]

    def command_args(self) -> list[str]:
        """The command as dbt CLI arguments, with project, profiles and threads set."""
        return [*self.command_words(), *self.project_args()]

    def run(
        self,
        warehouse: Warehouse,
        loaded: Collection[str] | None = None,
        full_refresh: bool = False,
    ) -> TransformResult:
        """Build on `warehouse` what the raw tables in `loaded` feed (None: everything),
        freshness first; raise DbtCoreError if it fails."""
        # Imported here so that `import blocks` does not import dbt.
        from pipeline.dbt_core import run_dbt_core

        return run_dbt_core(self, warehouse, loaded, full_refresh)
