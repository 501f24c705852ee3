"""dbt Cloud job: which job to run with prefect-dbt's credentials block, and how to wait for it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from prefect.blocks.core import Block
from prefect_dbt.cloud import DbtCloudCredentials
from pydantic import Field, field_validator

from blocks._form import BLOCK_CONFIG
from blocks._validation import check_not_a_masked_copy

if TYPE_CHECKING:
    from blocks.warehouse import Warehouse
    from pipeline.transform_result import TransformResult

DOMAIN_PATTERN = r"^[A-Za-z0-9.-]+(:\d{1,5})?$"
ARTIFACT_PATTERN = r"^[A-Za-z0-9_./-]+\.json$"


class DbtCloudTransform(Block):
    """A dbt Cloud job, the credentials of its account, and how long and how often to wait."""

    _block_type_name = "dbt Cloud Transform"
    _logo_url = "https://images.ctfassets.net/gm98wzqotmnx/5zE9lxfzBHjw3tnEup4wWL/9a001902ed43a84c6c96d23b24622e19/dbt-bit_tm.png?h=250"  # type: ignore[assignment]
    _documentation_url = "https://docs.getdbt.com/dbt-cloud/api-v2#/operations/Trigger%20Job%20Run"  # type: ignore[assignment]
    _description = (
        "Triggers a dbt Cloud job once per flow run and waits for it: a dbt Cloud Credentials "
        "block (account, API key, access URL host), the job, how long to wait and how often to "
        "poll, whether to cancel a run that outlives the wait and to re-run failed steps, and "
        "which run artifacts to list in Prefect."
    )

    model_config = BLOCK_CONFIG

    # What must be filled first first. No property has a schema default (see blocks/_form.py):
    # an empty field takes the default named in its help at load.
    credentials: DbtCloudCredentials = Field(
        title="dbt Cloud credentials",
        description="A prefect-dbt dbt Cloud Credentials document: a service token allowed to "
        "run the job, the account ID (the number after /accounts/ in dbt Cloud URLs) and the "
        "access URL host without https:// (cloud.getdbt.com, emea.dbt.com, ...). When you "
        "edit this form, pick it again.",
    )
    job_id: int = Field(
        title="Job ID",
        description="The number after /jobs/ in the job's URL.",
        ge=1,
    )
    timeout_seconds: int = Field(
        default=3 * 60 * 60,
        title="Wait timeout (seconds)",
        description="How long to wait for the run to finish before failing the flow; "
        "set it above the job's longest expected run. Empty: 10800 (3 hours).",
        ge=60,
    )
    cancel_on_timeout: bool = Field(
        default=True,
        title="Cancel the run on timeout",
        description="When the wait timeout passes, cancel the dbt Cloud run rather than leave "
        "it running with nobody waiting for it. Empty: on.",
    )
    poll_interval_seconds: int = Field(
        default=15,
        title="Poll interval (seconds)",
        description="How often to ask dbt Cloud for the run's status. Empty: 15.",
        ge=1,
        le=600,
    )
    failed_steps_retries: int = Field(
        default=0,
        title="Re-runs of failed steps",
        description="How many times to re-run only the failed steps of an errored run, with "
        "dbt Cloud's rerun from failure (0 fails fast). Above 0, a retried flow run also re-runs "
        "only the failed steps of its errored run instead of the whole job. Empty: 0.",
        ge=0,
        le=5,
    )
    artifacts: list[str] = Field(
        default=["run_results.json", "manifest.json"],
        title="Artifacts to publish",
        description="Run artifacts to list in the Prefect UI, each linked to the run page in "
        "dbt Cloud (its Artifacts tab), e.g. run_results.json, manifest.json, catalog.json, "
        "sources.json; those the run did not save are left out. Not set: run_results.json and "
        "manifest.json.",
    )

    @field_validator("credentials")
    @classmethod
    def _credentials_name_a_host_and_an_account(
        cls, value: DbtCloudCredentials
    ) -> DbtCloudCredentials:
        check_not_a_masked_copy(
            value.api_key.get_secret_value(), "credentials.api_key", "dbt Cloud Credentials"
        )
        # prefect-dbt's block accepts any text and number; the API client needs a bare host.
        if "://" in value.domain or not re.fullmatch(DOMAIN_PATTERN, value.domain):
            raise ValueError(
                f"credentials.domain {value.domain!r} must be a host name such as "
                "`cloud.getdbt.com` or `emea.dbt.com`, without `https://` or a path: "
                "edit the dbt Cloud Credentials block"
            )
        if value.account_id < 1:
            raise ValueError(
                f"credentials.account_id {value.account_id} must be the number after "
                "`/accounts/` in your dbt Cloud URLs: edit the dbt Cloud Credentials block"
            )
        return value

    @field_validator("artifacts")
    @classmethod
    def _artifacts_are_json_paths(cls, value: list[str]) -> list[str]:
        bad = [path for path in value if not re.fullmatch(ARTIFACT_PATTERN, path)]
        if bad:
            raise ValueError(
                f"artifacts {bad} are not artifact paths: use names like `run_results.json`"
            )
        return value

    def run(self, warehouse: Warehouse) -> TransformResult:
        """Run the job (or resume the run this flow run triggered); raise DbtCloudError if it fails.

        dbt Cloud reaches the warehouse with its own connection, so `warehouse` is not used.
        """
        from pipeline.dbt_cloud import run_dbt_cloud_job

        return run_dbt_cloud_job(self)

    def run_url(self, run_id: int, project_id: int | None = None) -> str:
        """Link to a run in the dbt Cloud UI, for when its payload has no `href`."""
        domain = self.credentials.domain
        host = "cloud.getdbt.com" if domain.startswith("cloud.") else domain
        project = f"/projects/{project_id}" if project_id else ""
        return f"https://{host}/deploy/{self.credentials.account_id}{project}/runs/{run_id}"
