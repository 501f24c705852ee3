"""Apply deployments/automations.yaml: create or update this project's automations, never twice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import yaml
from prefect.automations import Automation
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect_slack import SlackWebhook

from blocks import AlertSink, SlackAlerts, load_environment

DECLARATIONS = Path(__file__).with_name("automations.yaml")


def environment_tag(environment: str) -> str:
    return f"prefect.tag.env:{environment}"


def automation_name(environment: str, key: str) -> str:
    return f"elt-{environment}-{key}"


def build_automations(
    environment: str, block_document_id: Any, declarations: dict[str, Any]
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
                        body=spec["body"].format(environment=environment),
                    )
                ],
            )
        )
    return built


def notification_webhook(environment: str) -> UUID:
    """A prefect-slack webhook document mirroring the environment's Slack alerts block.

    The server runs automation actions and can only build block types it can import, so
    automations post through prefect-slack's SlackWebhook, not this project's SlackAlerts.
    """
    alerts: AlertSink = load_environment(environment).load_alerts()
    if not isinstance(alerts, SlackAlerts):
        raise ValueError(
            f"environment {environment!r} sends alerts to {type(alerts).__name__}, which "
            "automations can't post to: give it a slack-alerts block (SLACK_WEBHOOK_URL)"
        )
    return SlackWebhook(url=alerts.url).save(f"elt-{environment}", overwrite=True)


def apply_automations(environment: str, path: Path = DECLARATIONS) -> list[str]:
    """Create or update the environment's automations; return their names."""
    webhook_id = notification_webhook(environment)
    declarations = yaml.safe_load(path.read_text())
    names = []
    for automation in build_automations(environment, webhook_id, declarations):
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
