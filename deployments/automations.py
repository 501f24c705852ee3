"""Apply deployments/automations.yaml: create or update this project's automations, never twice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import yaml
from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
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


def apply_automations(
    environment: str, alerts: SlackAlerts, path: Path = DECLARATIONS
) -> list[str]:
    """Create or update the environment's automations, posting through the alerts' own
    webhook document (its URL stored once); return their names."""
    webhook_id = document_id(alerts.webhook)
    remove_legacy_webhook_copy(environment, kept=webhook_id)
    declarations = yaml.safe_load(path.read_text())
    names = []
    for automation in build_automations(environment, webhook_id, declarations, alerts.mention):
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
        names.append(automation.name)
    return names
