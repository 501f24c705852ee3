"""After a block document is saved: which documents to check (a pure plan), loading them with
the blocks' own validators, and one report through the environment's alerts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from prefect import runtime
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import BlockDocument
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


def check_saved_document(environment: str, block_document_id: str, how: str) -> str:
    """Check the saved document as planned; report problems through the environment's alerts
    (the log when those don't load) and fail naming them."""
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
    if not problems:
        logger.info("OK: %s loads as a run would load it (%s)", saved, ", ".join(plan.check))
        return "OK"
    report = check_report(saved, how, list(dict.fromkeys(problems)))
    alert = Alert(
        flow_name="block-check",
        flow_run_name=str(runtime.flow_run.name or ""),
        flow_run_id=str(runtime.flow_run.id or ""),
        state=f"Invalid save of {saved}",
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
    raise BlockCheckFailed(report)
