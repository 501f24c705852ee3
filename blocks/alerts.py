"""Where failure alerts go: Slack (production) or the console (local default)."""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from prefect.blocks.core import Block
from prefect.settings import PREFECT_UI_URL
from prefect_slack import SlackWebhook
from pydantic import BaseModel, Field, field_validator
from slack_sdk.webhook import WebhookClient

from blocks._form import BLOCK_CONFIG
from blocks._validation import check_not_a_masked_copy

# Slack mention tokens: a user, a user group, or @here / @channel.
MENTION_PATTERN = r"^(\s*(<@[UW][A-Z0-9]+>|<!subteam\^S[A-Z0-9]+>|<!here>|<!channel>))*\s*$"
UI_URL_PATTERN = r"^(|https?://\S+)$"
REASON_LIMIT = 1500
SEND_TIMEOUT_SECONDS = 10  # per connect or read, as slack_sdk applies it
SEND_DEADLINE_SECONDS = 20  # the whole request: a webhook that drips bytes can't hold the run

logger = logging.getLogger("prefect.elt.alerts")
T = TypeVar("T")


class Alert(BaseModel):
    """One failure, described for a person: what failed, why, when, and where to look."""

    flow_name: str
    flow_run_name: str
    flow_run_id: str
    state: str
    reason: str
    occurred_at: datetime
    deployment: str = ""
    failed: list[str] = []  # the tasks, tables or dbt nodes that failed, when known
    dbt_cloud_run_url: str = ""


def environment_label_field() -> Any:
    """The environment label every alert destination shows (declared per type for form order)."""
    return Field(
        default="local",
        title="Environment label",
        description="Shown in every alert so people know which environment failed, e.g. prod "
        "or staging. Empty: local.",
        min_length=1,
        max_length=40,
    )


def prefect_ui_url_field() -> Any:
    """The Prefect UI base URL alerts link runs to (declared per type for form order)."""
    return Field(
        default="",
        title="Prefect UI URL",
        description="Base URL of the Prefect UI for links to runs, e.g. "
        "https://app.prefect.cloud/account/<id>/workspace/<id>. Empty: PREFECT_UI_URL.",
        json_schema_extra={"pattern": UI_URL_PATTERN},
    )


class AlertSink(Block, ABC):
    """Common settings of every alert destination (declared by each type, in its form order)."""

    model_config = BLOCK_CONFIG

    if TYPE_CHECKING:
        environment_label: str
        prefect_ui_url: str

    @field_validator("prefect_ui_url", check_fields=False)
    @classmethod
    def _ui_url_is_http(cls, value: str) -> str:
        if not re.fullmatch(UI_URL_PATTERN, value):
            raise ValueError(
                f"prefect_ui_url {value!r} must start with http:// or https://, or be empty"
            )
        return value.rstrip("/")

    def run_url(self, flow_run_id: str) -> str:
        """Link to a flow run in the Prefect UI, or '' when no UI URL is known."""
        base = self.prefect_ui_url or (PREFECT_UI_URL.value() or "")
        return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base else ""

    def headline(self, alert: Alert) -> str:
        """One line saying what failed where."""
        return (
            f"[{self.environment_label}] {alert.state}: {alert.flow_name} / {alert.flow_run_name}"
        )

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver one alert."""


class ConsoleAlerts(AlertSink):
    """Alerts written to the run's log and the console: the local default, no account needed."""

    _block_type_name = "Console Alerts"
    _logo_url = "https://images.ctfassets.net/gm98wzqotmnx/3WpHrJ9uQd9y3hMw1xfT5b/prefect-logo.png"  # type: ignore[assignment]
    _documentation_url = "https://docs.prefect.io/v3/develop/logging"  # type: ignore[assignment]
    _description = "Writes failure alerts to the log, for local runs with no Slack workspace."

    environment_label: str = environment_label_field()
    prefect_ui_url: str = prefect_ui_url_field()

    def send(self, alert: Alert) -> None:
        lines = [self.headline(alert), *(f"  {k}: {v}" for k, v in alert_fields(self, alert))]
        logger.error("\n".join(lines))


class SlackAlerts(AlertSink):
    """Alerts posted to a Slack channel through prefect-slack's webhook, as Block Kit messages."""

    _block_type_name = "Slack Alerts"
    _logo_url = SlackWebhook._logo_url
    _documentation_url = "https://api.slack.com/messaging/webhooks"  # type: ignore[assignment]
    _description = (
        "Posts one Block Kit message per failed or crashed run to a Slack channel through a "
        "Slack Incoming Webhook document, with the reason and a link to the run. The "
        "automations post through the same webhook document, so its URL is stored once."
    )

    # What must be filled first first; no property has a schema default (blocks/_form.py).
    webhook: SlackWebhook = Field(
        title="Slack webhook",
        description="The Slack Incoming Webhook document (prefect-slack) holding the channel's "
        "webhook URL; the automations post through the same document. When you edit this "
        "form, pick it again.",
    )
    environment_label: str = environment_label_field()
    mention: str = Field(
        default="",
        title="Mention",
        description="Who to notify in the message: <!here>, <!channel>, a user <@U0123ABC> "
        "or a group <!subteam^S0123ABC>, space separated. Empty: nobody.",
        json_schema_extra={"pattern": MENTION_PATTERN},
    )
    prefect_ui_url: str = prefect_ui_url_field()

    @field_validator("webhook")
    @classmethod
    def _url_is_http(cls, value: SlackWebhook) -> SlackWebhook:
        check_not_a_masked_copy(
            value.url.get_secret_value(), "webhook.url", "Slack Incoming Webhook"
        )
        problem = webhook_url_problem(value.url.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("mention")
    @classmethod
    def _mention_is_slack_syntax(cls, value: str) -> str:
        if not re.fullmatch(MENTION_PATTERN, value):
            raise ValueError(
                f"mention {value!r} must use Slack's syntax: `<!here>`, `<!channel>`, "
                "`<@U0123ABC>` for a user or `<!subteam^S0123ABC>` for a group"
            )
        return value.strip()

    def send(self, alert: Alert) -> None:
        # SlackWebhook's client waits 30 s per read; an alert must not hold a failing run.
        client = WebhookClient(
            url=self.webhook.url.get_secret_value(), timeout=SEND_TIMEOUT_SECONDS
        )
        response = within_deadline(
            lambda: client.send(text=self.headline(alert), blocks=slack_blocks(self, alert)),
            SEND_DEADLINE_SECONDS,
            "posting the alert to Slack",
        )
        if response.status_code >= 400:
            raise RuntimeError(f"Slack answered {response.status_code}: {response.body[:200]}")


def webhook_url_problem(url: str) -> str:
    """'' for an https:// webhook URL, else what is wrong and the fix (never the URL: a secret)."""
    if re.fullmatch(r"https://\S+", url):
        return ""
    # A stand-in on this machine (tests, a local relay) never sends the URL over a network.
    if re.fullmatch(r"http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/\S*)?", url):
        return ""
    if re.fullmatch(r"http://\S+", url):
        return (
            "webhook url must start with https:// (Slack sends the webhook URL over TLS only; "
            "http:// would post the channel's secret URL in clear text): copy the URL again "
            "from Slack's Incoming Webhooks page, https://hooks.slack.com/services/..."
        )
    return (
        "webhook url must be the webhook URL, starting with https://hooks.slack.com/: copy it "
        "from Slack's Incoming Webhooks page into the Slack Incoming Webhook document"
    )


def within_deadline(call: Callable[[], T], seconds: float, what: str) -> T:
    """`call()`'s result, or TimeoutError after `seconds` in all (socket timeouts are per read).

    The call goes on in a daemon thread that the process does not wait for."""
    outcome: Future[T] = Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:
            outcome.set_exception(exc)

    threading.Thread(target=run, name=what, daemon=True).start()
    try:
        return outcome.result(timeout=seconds)
    except FutureTimeout:
        raise TimeoutError(f"{what} took more than {seconds:g} s; gave up") from None


def mrkdwn(text: str) -> str:
    """`text` shown as written in Slack's mrkdwn: no mention, link or markup from it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_block(text: str) -> str:
    """`text` in a mrkdwn code block that the text itself can't close."""
    # A zero-width space between backticks keeps a ``` in the text from ending the block.
    return "```" + mrkdwn(text).replace("`", "`\u200b") + "```"


def alert_fields(sink: AlertSink, alert: Alert) -> list[tuple[str, str]]:
    """The alert's details as label/value pairs, empty ones left out."""
    reason = (
        alert.reason if len(alert.reason) <= REASON_LIMIT else alert.reason[:REASON_LIMIT] + "…"
    )
    pairs = [
        ("Environment", sink.environment_label),
        ("Deployment", alert.deployment),
        ("Failed", ", ".join(alert.failed)),
        ("When (UTC)", alert.occurred_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("Reason", reason),
        ("Run", sink.run_url(alert.flow_run_id)),
        ("dbt Cloud run", alert.dbt_cloud_run_url),
    ]
    return [(label, value) for label, value in pairs if value]


def slack_blocks(sink: SlackAlerts, alert: Alert) -> list[dict[str, Any]]:
    """A Block Kit message: header, mention, fields, reason, and buttons to the run(s)."""
    fields = dict(alert_fields(sink, alert))
    reason = fields.pop("Reason", "")
    links = {name: fields.pop(name) for name in ("Run", "dbt Cloud run") if name in fields}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": sink.headline(alert)[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{mrkdwn(value)}"}
                for label, value in fields.items()
            ],
        },
    ]
    if reason:
        reason_text = f"*Reason*\n{code_block(reason)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": reason_text}})
    if sink.mention:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": sink.mention}]})
    if links:
        buttons = [
            {"type": "button", "text": {"type": "plain_text", "text": f"Open {name}"}, "url": url}
            for name, url in links.items()
        ]
        blocks.append({"type": "actions", "elements": buttons})
    return blocks
