"""dbt Cloud job: prefect-dbt's credentials plus which job to run and how to wait for it."""

from __future__ import annotations

import re

from prefect_dbt.cloud import DbtCloudCredentials
from pydantic import Field, SecretStr, field_validator

DOMAIN_PATTERN = r"^[A-Za-z0-9.-]+(:\d{1,5})?$"
ARTIFACT_PATTERN = r"^[A-Za-z0-9_./-]+\.json$"


class DbtCloudTransform(DbtCloudCredentials):
    """A dbt Cloud job and the account it lives in, with how long and how often to wait for it."""

    _block_type_name = "dbt Cloud Transform"
    _documentation_url = "https://docs.getdbt.com/dbt-cloud/api-v2#/operations/Trigger%20Job%20Run"
    _description = (
        "Triggers a dbt Cloud job and waits for it: the account and API key (a service token), "
        "the job, how long to wait and how often to poll, whether to re-run failed steps, and "
        "which run artifacts to show in Prefect."
    )

    api_key: SecretStr = Field(
        title="API key",
        description="dbt Cloud service token with permission to run the job "
        "(Account settings → Service tokens).",
    )
    account_id: int = Field(
        title="Account ID",
        description="The number after `/accounts/` in your dbt Cloud URLs.",
        ge=1,
    )
    domain: str = Field(
        default="cloud.getdbt.com",
        title="Access URL host",
        description="Host of your dbt Cloud access URL, without `https://`: "
        "`cloud.getdbt.com`, or a regional / single-tenant one such as `emea.dbt.com`.",
        json_schema_extra={"pattern": DOMAIN_PATTERN},
    )
    job_id: int = Field(
        title="Job ID",
        description="The number after `/jobs/` in the job's URL.",
        ge=1,
    )
    timeout_seconds: int = Field(
        default=3 * 60 * 60,
        title="Wait timeout (seconds)",
        description="How long to wait for the run to finish before failing the flow; "
        "set it above the job's longest expected run.",
        ge=60,
    )
    poll_interval_seconds: int = Field(
        default=15,
        title="Poll interval (seconds)",
        description="How often to ask dbt Cloud for the run's status.",
        ge=1,
        le=600,
    )
    failed_steps_retries: int = Field(
        default=0,
        title="Re-runs of failed steps",
        description="How many times to re-run only the failed steps of a failed run "
        "(0 fails fast).",
        ge=0,
        le=5,
    )
    artifacts: list[str] = Field(
        default=["run_results.json", "manifest.json"],
        title="Artifacts to publish",
        description="Run artifacts to link in the Prefect UI, e.g. `run_results.json`, "
        "`manifest.json`, `catalog.json`, `sources.json`.",
    )

    @field_validator("domain", mode="before")
    @classmethod
    def _domain_is_host(cls, value: str) -> str:
        if "://" in str(value) or not re.fullmatch(DOMAIN_PATTERN, str(value)):
            raise ValueError(
                f"domain {value!r} must be a host name such as `cloud.getdbt.com` or "
                "`emea.dbt.com`, without `https://` or a path"
            )
        return str(value)

    @field_validator("artifacts")
    @classmethod
    def _artifacts_are_json_paths(cls, value: list[str]) -> list[str]:
        bad = [path for path in value if not re.fullmatch(ARTIFACT_PATTERN, path)]
        if bad:
            raise ValueError(
                f"artifacts {bad} are not artifact paths: use names like `run_results.json`"
            )
        return value

    def run_url(self, run_id: int, project_id: int | None = None) -> str:
        """Link to a run in the dbt Cloud UI."""
        host = "cloud.getdbt.com" if self.domain.startswith("cloud.") else self.domain
        project = f"/projects/{project_id}" if project_id else ""
        return f"https://{host}/deploy/{self.account_id}{project}/runs/{run_id}"
