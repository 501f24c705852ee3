"""After a block document is saved: which documents to check (a pure plan), loading them with
the blocks' own validators, whether the save put back string values the previous save changed
(Prefect 3.8's UI saving a stale edit form), and one report through the environment's alerts."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import runtime
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import BlockDocument
from prefect.events.filters import (
    EventFilter,
    EventIDFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventOrder,
    EventResourceFilter,
)
from prefect_dbt.cloud import DbtCloudCredentials
from prefect_slack import SlackWebhook

from blocks import Alert, ConsoleAlerts, ELTEnvironment
from blocks.environment import BLOCK_TYPES, load_block, load_environment
from pipeline.alerting import environment_alerts

logger = logging.getLogger("prefect.elt.block_check")

ENVIRONMENT_SLUG = ELTEnvironment.get_block_type_slug()
# The project's types and the integration documents they link (a webhook URL edited on its own
# document is as much a save to check as one edited through Slack Alerts).
CHECKED_BLOCK_TYPES = (*BLOCK_TYPES, SlackWebhook, DbtCloudCredentials)
PAGE = 200  # the server's default page size


class BlockCheckFailed(RuntimeError):
    """A saved document holds values a run would refuse; the message names each fix."""


def checked_block_type_names() -> list[str]:
    """The block type names the automation matches (events name a document's type by name)."""
    return sorted(block_type.get_block_type_name() for block_type in CHECKED_BLOCK_TYPES)


@dataclass(frozen=True)
class Document:
    """One stored block document: what it is and which documents it links."""

    id: UUID
    slug: str
    name: str
    links: tuple[UUID, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.slug}/{self.name}"


@dataclass(frozen=True)
class CheckPlan:
    """The documents (`type/name`) this environment's check loads; none when it is not its
    save to report, `why` saying so."""

    check: tuple[str, ...]
    why: str


def plan_check(saved_id: UUID, environment: str, documents: Sequence[Document]) -> CheckPlan:
    """What environment `environment`'s check does for the save of document `saved_id`."""
    by_id = {document.id: document for document in documents}
    saved = by_id.get(saved_id)
    if saved is None:
        return CheckPlan((), "the saved document is gone or not a named document")
    users = environments_using(saved, by_id)
    own = [user for user in users if user.name == environment]
    if own:
        environment_ref = own[0].reference
        if saved.slug == ENVIRONMENT_SLUG:
            # Each linked document alone first, so a problem names the document it is in.
            linked = [by_id[link].reference for link in saved.links if link in by_id]
            return CheckPlan((*linked, environment_ref), f"environment {environment!r} saved")
        return CheckPlan((saved.reference, environment_ref), f"used by {environment!r}")
    if users:
        return CheckPlan((), "used by other environments only: their checks report it")
    if saved.name == environment:
        return CheckPlan((saved.reference,), f"no environment uses it; named {environment!r}")
    return CheckPlan((), f"no environment uses it and it is not named {environment!r}")


def environments_using(saved: Document, by_id: dict[UUID, Document]) -> list[Document]:
    """The environment documents that are `saved` or link it, directly or through others."""
    parents: dict[UUID, list[Document]] = {}
    for document in by_id.values():
        for link in document.links:
            parents.setdefault(link, []).append(document)
    found, seen, todo = [], {saved.id}, [saved]
    while todo:
        document = todo.pop()
        if document.slug == ENVIRONMENT_SLUG:
            found.append(document)
        for parent in parents.get(document.id, []):
            if parent.id not in seen:
                seen.add(parent.id)
                todo.append(parent)
    return sorted(found, key=lambda document: document.name)


def check_report(saved: str, how: str, problems: Sequence[str]) -> str:
    """What the alert says: the document saved and every problem, each naming field and fix."""
    lines = "\n".join(f"- {problem}" for problem in problems)
    return f"{saved} was {how} with values a run would refuse:\n{lines}"


def as_document(stored: BlockDocument) -> Document:
    links = tuple(
        UUID(str(reference["block_document"]["id"]))
        for reference in (stored.block_document_references or {}).values()
    )
    slug = stored.block_type.slug if stored.block_type else ""
    return Document(stored.id, slug, stored.name or "", links)


def read_documents() -> list[Document]:
    """Every named block document on the server, without secrets."""
    documents: list[Document] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_block_documents(
                offset=len(documents), limit=PAGE, include_secrets=False
            )
            documents.extend(as_document(stored) for stored in page)
            if len(page) < PAGE:
                return documents


def load_problem(reference: str) -> str:
    """'' when the document loads as a run would load it, else what is wrong and the fix."""
    slug, name = reference.split("/", 1)
    try:
        if slug != ENVIRONMENT_SLUG:
            load_block(reference)
            return ""
        load_environment(name)  # refuses a copy where a link should be, naming the fix
    except ValueError as exc:  # InvalidBlockDocumentError, a missing document, a bad link
        return str(exc)
    return ""


# --- a save that puts older values back (Prefect 3.8's UI editing its stale copy) ----------
#
# Prefect 3.8's UI fills a block's edit form from its own copy of the document and refreshes
# that copy in the background after a save; when the refresh fails or is slow, a form saved
# from it writes the values from before the last save back. The server's
# `prefect.block-document.created` / `.updated` events carry the document's non-secret
# *string* values (`payload.data`); comparing this save (N) with the previous two (N-1, N-2)
# finds the string fields N-1 changed and N put back. Not covered: secret fields, links to
# nested documents and non-string values (numbers, booleans, lists: none of them is in the
# payload, so such a field only shows as "not set"), and saves older than the server keeps
# events (7 days by default).

SAVE_EVENTS = ("prefect.block-document.created", "prefect.block-document.updated")
EVENTS_PAGE = 50  # the most the server's /events/filter returns at once
EVENT_WAIT_SECONDS = 30.0  # the server persists events in batches (every 5 s by default)
SHOWN_CHARACTERS = 60


@dataclass(frozen=True)
class Save:
    """One save of a document as its lifecycle event tells it: when, and its string values."""

    event_id: UUID
    occurred: datetime
    data: Mapping[str, str]


@dataclass(frozen=True)
class Revert:
    """A field the previous save changed and this save put back: `older` is the value before
    the previous save (and again now), `undone` the value the previous save set; None is a
    field without a string value (not set, null, not text)."""

    field: str
    older: str | None
    undone: str | None


def reverted_fields(
    before_previous: Mapping[str, str] | None,
    previous: Mapping[str, str] | None,
    this: Mapping[str, str],
) -> list[Revert]:
    """The fields where this save equals the save before the previous one and the previous
    save differs: what the previous save changed and this one undid. Nothing without both
    earlier saves (a first or second save). Each save is its event's `payload.data`: only the
    non-secret string fields, so secrets, nested documents and non-string values are not
    compared (a field missing from a save is compared as None: not set or not a string)."""
    if before_previous is None or previous is None:
        return []
    fields = sorted({*before_previous, *previous, *this})
    return [
        Revert(field, this.get(field), previous.get(field))
        for field in fields
        if this.get(field) == before_previous.get(field) != previous.get(field)
    ]


def saves_up_to(saves: Sequence[Save], event_id: UUID | None) -> list[Save]:
    """The saves up to and including the one of `event_id` (the latest when None), oldest
    first, ordered by when they occurred (then by the time-ordered event id); [] when that
    save is not among them."""
    ordered = sorted(saves, key=lambda save: (save.occurred, save.event_id))
    if event_id is None:
        return ordered
    ids = [save.event_id for save in ordered]
    return ordered[: ids.index(event_id) + 1] if event_id in ids else []


def _shown(value: str | None) -> str:
    if value is None:
        return "(not set)"
    if len(value) > SHOWN_CHARACTERS:
        value = value[: SHOWN_CHARACTERS - 1] + "…"
    return repr(value)


def revert_report(saved: str, previous_occurred: datetime, reverts: Sequence[Revert]) -> str:
    """What the alert says: the document, each field put back with both values and when the
    undone save was made, and what to do."""
    when = previous_occurred.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = "\n".join(
        f"- `{revert.field}`: the save at {when} changed it from {_shown(revert.older)} to "
        f"{_shown(revert.undone)}; this save put {_shown(revert.older)} back"
        for revert in reverts
    )
    return (
        f"{saved} was updated with older values put back:\n{lines}\n"
        "If you did not mean to undo that: Prefect 3.8's UI saved an edit form filled from its "
        "copy from before the last save. Reload the block's page, check the values and save "
        "again. If you meant it, nothing to do."
    )


def _event_filter(**criteria: Any) -> EventFilter:
    """Any time the server keeps events for (not "until now" by this machine's clock: the
    server's may be ahead)."""
    now = datetime.now(UTC)
    occurred = EventOccurredFilter(since=now - timedelta(days=180), until=now + timedelta(days=1))
    return EventFilter(**{"occurred": occurred, "order": EventOrder.DESC, **criteria})


def read_saves(block_document_id: str, until: datetime | None = None) -> list[Save]:
    """The document's latest saves (at most a page of them) that occurred until `until`, from
    the server's lifecycle events."""
    criteria: dict[str, Any] = {
        "event": EventNameFilter(name=list(SAVE_EVENTS)),
        "resource": EventResourceFilter(id=[f"prefect.block-document.{block_document_id}"]),
    }
    if until is not None:
        # A second's margin for the stored time's precision: saves_up_to cuts at this save.
        criteria["occurred"] = EventOccurredFilter(
            since=until - timedelta(days=180), until=until + timedelta(seconds=1)
        )
    with get_client(sync_client=True) as client:
        page = client.read_events(_event_filter(**criteria), limit=EVENTS_PAGE)
    return [
        Save(event.id, event.occurred, _string_values(event.payload.get("data")))
        for event in page.events
    ]


def _string_values(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        return {}
    return {str(key): value for key, value in data.items() if isinstance(value, str)}


def wait_for_event(event_id: UUID, wait_seconds: float) -> datetime | None:
    """When the event `event_id` occurred, once the server has stored it (it persists events
    in batches, every 5 s by default); None when it doesn't within `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        with get_client(sync_client=True) as client:
            page = client.read_events(_event_filter(id=EventIDFilter(id=[event_id])), limit=1)
        if page.events:
            return page.events[0].occurred
        if time.monotonic() >= deadline:
            return None
        time.sleep(1.0)


def last_three_saves(
    block_document_id: str, event_id: str, wait_seconds: float = EVENT_WAIT_SECONDS
) -> list[Save]:
    """This save and the two before it, oldest first (fewer for a new document). This save is
    the one of the triggering event `event_id`, so later saves don't shift it; the latest one
    when no id is given. [] when that event is not stored within `wait_seconds`."""
    if not event_id:
        return saves_up_to(read_saves(block_document_id), None)[-3:]
    wanted = UUID(event_id)
    occurred = wait_for_event(wanted, wait_seconds)
    if occurred is None:
        return []
    return saves_up_to(read_saves(block_document_id, until=occurred), wanted)[-3:]


def reverts_of_save(saved: str, block_document_id: str, how: str, event_id: str) -> str:
    """The report of the string fields this save put back to their values from before the
    previous save; '' when none (or for a new document). Reading the events failing is
    logged, not raised: the rest of the check still reports."""
    if how == "created":
        return ""
    try:
        saves = last_three_saves(block_document_id, event_id)
    except Exception as exc:
        logger.warning(
            "Could not read the saves of %s, so not checked for older values put back (%s: %s)",
            saved, type(exc).__name__, exc,
        )  # fmt: skip
        return ""
    if not saves:
        logger.warning(
            "The event of this save (%s) is not on the server after %.0f s: %s not checked for "
            "older values put back", event_id, EVENT_WAIT_SECONDS, saved,
        )  # fmt: skip
        return ""
    if len(saves) < 3:
        return ""
    before_previous, previous, this = saves
    reverts = reverted_fields(before_previous.data, previous.data, this.data)
    return revert_report(saved, previous.occurred, reverts) if reverts else ""


def check_saved_document(
    environment: str, block_document_id: str, how: str, event_id: str = ""
) -> str:
    """Check the saved document as planned; report problems through the environment's alerts
    (the log when those don't load) and fail naming them. A save that put back string values
    the previous save changed (see `reverted_fields`) is reported the same way; alone, it
    does not fail the check (an undo may be meant). `event_id` is the save's event, which the
    automation passes; without it the document's latest save is the one compared."""
    if not block_document_id:
        raise ValueError(
            "block_document_id is empty: the block-saved automation passes the saved "
            "document's id; to check one by hand, pass its id (Prefect UI, Blocks, the document)"
        )
    documents = read_documents()
    plan = plan_check(UUID(block_document_id), environment, documents)
    saved = next((d.reference for d in documents if str(d.id) == block_document_id), "")
    if not plan.check:
        logger.info("Not checked by %r: %s (%s)", environment, saved or block_document_id, plan.why)
        return f"not checked: {plan.why}"
    problems = [problem for reference in plan.check if (problem := load_problem(reference))]
    reverted = reverts_of_save(saved, block_document_id, how, event_id)
    if not problems and not reverted:
        logger.info("OK: %s loads as a run would load it (%s)", saved, ", ".join(plan.check))
        return "OK"
    reports = [check_report(saved, how, list(dict.fromkeys(problems)))] if problems else []
    report = "\n\n".join([*reports, *([reverted] if reverted else [])])
    alert = Alert(
        flow_name="block-check",
        flow_run_name=str(runtime.flow_run.name or ""),
        flow_run_id=str(runtime.flow_run.id or ""),
        state=f"Invalid save of {saved}" if problems else f"Older values put back in {saved}",
        reason=report,
        occurred_at=datetime.now(UTC),
        deployment=str(runtime.deployment.name or ""),
        failed=[saved],
    )
    sink = environment_alerts(environment)
    try:
        sink.send(alert)
    except Exception as exc:
        logger.warning("Could not post the check's alert (%s: %s)", type(exc).__name__, exc)
        ConsoleAlerts(environment_label=sink.environment_label).send(alert)
    if problems:
        raise BlockCheckFailed(report)
    logger.warning(report)
    return reverted
