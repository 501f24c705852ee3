"""Apply deployments/automations.yaml: create or update this project's automations, never twice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import yaml
from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.events.actions import RunDeployment, SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.exceptions import ObjectNotFound
from prefect_slack import SlackWebhook

from blocks import SlackAlerts
from blocks.environment import document_id

DECLARATIONS = Path(__file__).with_name("automations.yaml")


def environment_tag(environment: str) -> str:
    return f"prefect.tag.env:{environment}"


def automation_name(environment: str, key: str) -> str:
    return f"elt-{environment}-{key}"


def build_automations(
    environment: str, block_document_id: Any, declarations: dict[str, Any], mention: str = ""
) -> list[Automation]:
    """The declared automations for one environment, posting through its alerts block."""
    flows = declarations["flows"]
    built = []
    for spec in declarations["automations"]:
        proactive = "within_seconds" in spec
        trigger = EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            # A run belongs to an environment by its `env:<name>` tag (set by its deployment).
            match_related=[
                {"prefect.resource.role": "flow", "prefect.resource.name": flows},
                {
                    "prefect.resource.role": "tag",
                    "prefect.resource.id": environment_tag(environment),
                },
            ],
            after=set(spec.get("after", [])),
            expect=set(spec["expect"]),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive if proactive else Posture.Reactive,
            threshold=1,
            within=timedelta(seconds=spec.get("within_seconds", 0)),
        )
        built.append(
            Automation(
                name=automation_name(environment, spec["key"]),
                description=spec["description"],
                enabled=spec["enabled"],
                trigger=trigger,
                actions=[
                    SendNotification(
                        block_document_id=block_document_id,
                        subject=spec["subject"].format(environment=environment),
                        # Crash alerts reach the same people as the hooks' alerts.
                        body=(f"{mention}\n" if mention else "")
                        + spec["body"].format(environment=environment),
                    )
                ],
            )
        )
    return built


def remove_legacy_webhook_copy(environment: str, kept: UUID) -> None:
    """Delete the webhook copy older versions saved for the automations (`elt-<environment>`):
    the automations now post through the alerts' own webhook document."""
    with get_client(sync_client=True) as client:
        try:
            copy = client.read_block_document_by_name(
                f"elt-{environment}", SlackWebhook.get_block_type_slug()
            )
        except ObjectNotFound:
            return
        if copy.id != kept:
            client.delete_block_document(copy.id)


def build_block_check_automations(
    environment: str, deployment_id: UUID, declarations: dict[str, Any], block_types: list[str]
) -> list[Automation]:
    """The environment's automations that run its block check after a document is saved."""
    built = []
    for spec in declarations["block_checks"]:
        # Prefect's server emits these with the document as resource and its type (by name)
        # as the related resource of role `block-type` (prefect/server/events/schemas/lifecycle).
        trigger = EventTrigger(
            match={"prefect.resource.id": "prefect.block-document.*"},
            match_related={
                "prefect.resource.role": "block-type",
                "prefect.resource.name": block_types,
            },
            expect=set(spec["expect"]),
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        )
        parameters = {
            "environment": environment,
            "block_document_id": "{{ event.resource.id | replace('prefect.block-document.', '') }}",
            "how": "{{ event.event | replace('prefect.block-document.', '') }}",
            # The save itself: the check compares it with the two before it (later saves
            # must not shift it). `string`: the server renders a lone expression through
            # `tojson`, which refuses a UUID (the action fails, no check runs).
            "event_id": "{{ event.id | string }}",
        }
        action = RunDeployment(
            source="selected", deployment_id=deployment_id, parameters=parameters
        )
        built.append(
            Automation(
                name=automation_name(environment, spec["key"]),
                description=spec["description"],
                enabled=spec["enabled"],
                trigger=trigger,
                actions=[action],
            )
        )
    return built


def block_check_deployment(environment: str, job: str) -> str:
    """The full name of the environment's block-check deployment, as prefect.yaml names it."""
    return f"{job}/{environment}-{job}"


def apply_block_check_automations(environment: str, path: Path = DECLARATIONS) -> list[str]:
    """Create or update the environment's block-check automations; [] when its block-check
    deployment does not exist yet (setup `--deploy` creates it)."""
    from pipeline.block_check import checked_block_type_names

    declarations = yaml.safe_load(path.read_text())
    names = []
    with get_client(sync_client=True) as client:
        for spec in declarations["block_checks"]:
            try:
                deployment = client.read_deployment_by_name(
                    block_check_deployment(environment, spec["job"])
                )
            except ObjectNotFound:
                return []
            for automation in build_block_check_automations(
                environment, deployment.id, {"block_checks": [spec]}, checked_block_type_names()
            ):
                names.append(create_or_update(automation))
    return names


def create_or_update(automation: Automation) -> str:
    """Save `automation` under its name, replacing one of that name; return the name."""
    try:
        # Typed as async by its overloads; called from sync code it runs synchronously.
        existing = cast(Automation, Automation.read(name=automation.name))
    except ValueError:
        existing = None
    if existing is None:
        automation.create()
    else:
        automation.id = existing.id
        automation.update()
    return automation.name


def apply_automations(
    environment: str, alerts: SlackAlerts, path: Path = DECLARATIONS
) -> list[str]:
    """Create or update the environment's automations, posting through the alerts' own
    webhook document (its URL stored once); return their names."""
    webhook_id = document_id(alerts.webhook)
    remove_legacy_webhook_copy(environment, kept=webhook_id)
    declarations = yaml.safe_load(path.read_text())
    built = build_automations(environment, webhook_id, declarations, alerts.mention)
    return [create_or_update(automation) for automation in built]
