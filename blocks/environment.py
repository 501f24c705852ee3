"""An environment's blocks in one document: the warehouse, transform and alerts it runs with."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Self, get_args
from uuid import UUID

from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import BlockDocument
from prefect.exceptions import ObjectNotFound
from pydantic import Field, ValidationError

from blocks._form import BLOCK_CONFIG
from blocks.alerts import ConsoleAlerts, SlackAlerts
from blocks.dbt_cloud import DbtCloudTransform
from blocks.dbt_core import DbtCoreTransform
from blocks.duckdb_warehouse import DuckDBWarehouse
from blocks.snowflake_warehouse import SnowflakeWarehouse

LOCAL = "local"
DOCS_URL = "https://docs.prefect.io/v3/develop/blocks"


class ELTEnvironment(Block):
    """The warehouse, transform and alerts documents one environment (local, staging, prod) uses."""

    _block_type_name = "ELT Environment"
    _logo_url = "https://images.ctfassets.net/gm98wzqotmnx/3WpHrJ9uQd9y3hMw1xfT5b/prefect-logo.png"  # type: ignore[assignment]
    _documentation_url = DOCS_URL  # type: ignore[assignment]
    _description = (
        "Which block documents an environment uses. Deployments pick an environment by name "
        "(local, staging, prod); switching warehouse, dbt or Slack is picking another document "
        "here, not a code change."
    )

    model_config = BLOCK_CONFIG

    # No defaults: a field the UI resets to a default would silently repoint the environment.
    warehouse: DuckDBWarehouse | SnowflakeWarehouse = Field(
        title="Warehouse",
        description="Pick the warehouse document: a DuckDB Warehouse or a Snowflake Warehouse "
        "(one tab each). When you edit this form, pick all three documents again.",
    )
    transform: DbtCoreTransform | DbtCloudTransform = Field(
        title="Transform",
        description="Pick how dbt runs: a dbt Core Transform or a dbt Cloud Transform (a job).",
    )
    alerts: SlackAlerts | ConsoleAlerts = Field(
        title="Alerts",
        description="Pick where failure alerts go: Slack Alerts, or Console Alerts (the run's "
        "log).",
    )

    @classmethod
    def _from_block_document(cls, block_document: BlockDocument) -> Self:
        references = block_document.block_document_references or {}
        data = dict(block_document.data or {})
        refuse_copied_documents(block_document.name, data, references)
        # The server hydrates a referenced document's values without its type, and a union
        # would take the first type they fit (a Snowflake document fits DuckDB's defaults):
        # build each referenced document as exactly its type. Built here rather than by
        # passing `block_type_slug`, whose lookup first imports every installed Prefect
        # integration (Kubernetes, Docker, Snowflake's SPCS worker: 5-9 s per process).
        for role, reference in references.items():
            if isinstance(data.get(role), dict):
                slug = reference["block_document"]["block_type"]["slug"]
                data[role] = role_type(role, slug).model_validate(data[role])
        return super()._from_block_document(block_document.model_copy(update={"data": data}))


ROLES = ("warehouse", "transform", "alerts")


def refuse_copied_documents(
    name: str | None, data: dict[str, Any], references: dict[str, Any]
) -> None:
    """Raise naming each role held as a copy of values instead of a link to a document."""
    # The Prefect UI's edit form (3.8) saves a nested field that was not picked again as a
    # copy of the values it shows: the environment would no longer follow that document.
    copies = [role for role in ROLES if isinstance(data.get(role), dict) and role not in references]
    if copies:
        fields = ", ".join(copies)
        raise InvalidBlockDocumentError(
            f"Environment {name!r} holds a copy of its {fields}, not a link to a document: the "
            "Prefect UI's edit form saves a nested field that way when it is not picked again. "
            f"Edit the environment and pick its {fields} document again (every nested field, "
            f"each time you edit it), or rerun `python -m deployments.setup --environment {name}`."
        )


def role_type(role: str, slug: str) -> type[Block]:
    """The block type of `role` (warehouse, transform, alerts) whose slug is `slug`."""
    field = ELTEnvironment.model_fields.get(role)
    annotation = field.annotation if field is not None else None
    members = [m for m in get_args(annotation) if isinstance(m, type) and issubclass(m, Block)]
    for member in members:
        if member.get_block_type_slug() == slug:
            return member
    expected = ", ".join(member.get_block_type_slug() for member in members)
    raise ValueError(
        f"The environment's {role} names a {slug!r} document, which can't be its {role} "
        f"(expected one of: {expected}): pick a document of one of those types"
    )


def embedded_default() -> ELTEnvironment:
    """The `local` environment before any setup: DuckDB, dbt Core, console alerts."""
    return ELTEnvironment(
        warehouse=DuckDBWarehouse(), transform=DbtCoreTransform(), alerts=ConsoleAlerts()
    )


class InvalidBlockDocumentError(ValueError):
    """A saved block document holds values its block type refuses (e.g. typed into the UI)."""


# What each environment field links, as the UI names the block types.
ROLE_KINDS = {
    "warehouse": "DuckDB Warehouse or Snowflake Warehouse",
    "transform": "dbt Core Transform or dbt Cloud Transform",
    "alerts": "Console Alerts or Slack Alerts",
}


def describe_validation_error(error: ValidationError) -> str:
    """`field: problem` for each field, the path dotted (nested documents included)."""
    roles = ROLE_KINDS if error.title == ELTEnvironment.__name__ else {}
    return "; ".join(describe_errors(error.errors(), roles))


def describe_errors(errors: Sequence[Mapping[str, Any]], roles: Mapping[str, str]) -> list[str]:
    """One line per problem; of a union's members only the closest fit speaks."""
    problems = []
    for item in closest_member_errors(errors):
        where = ".".join(str(part) for part in item["loc"] if not _is_member_tag(part))
        problems.append(f"{where or 'document'}: {problem_text(where, item, roles)}")
    return list(dict.fromkeys(problems))


def closest_member_errors(errors: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The errors with each union field's members narrowed to the member that fits best."""
    by_member: dict[Any, dict[Any, list[Mapping[str, Any]]]] = {}
    kept: list[Mapping[str, Any]] = []
    for item in errors:
        loc = item["loc"]
        if len(loc) >= 2 and _is_member_tag(loc[1]):
            by_member.setdefault(loc[0], {}).setdefault(loc[1], []).append(item)
        elif len(loc) == 1 and _is_slug_mismatch(item):
            by_member.setdefault(loc[0], {}).setdefault(None, []).append(item)
        else:
            kept.append(item)
    for members in by_member.values():
        groups = list(members.values())
        # A member refused only for its type is the wrong member, unless every one is.
        fitting = [group for group in groups if not all(map(_is_slug_mismatch, group))]
        closest = min(fitting, key=len) if fitting else groups[0][:1]
        kept.extend(closest)
    return kept


def problem_text(where: str, item: Mapping[str, Any], roles: Mapping[str, str]) -> str:
    """The problem in words; an environment field's says which document to pick."""
    message = str(item["msg"]).removeprefix("Value error, ")
    kinds = roles.get(where)
    if kinds is None:
        return message
    if item["type"] == "missing":
        return f"no document chosen: pick a {kinds} document"
    if _is_slug_mismatch(item):
        linked = message.rsplit("got ", 1)[-1].strip("'")
        return f"links a {linked} document, which is not a {kinds}: pick a {kinds} document"
    if "valid dictionary or instance" in message:
        return f"is not a link to a document: pick a {kinds} document"
    return message


def _is_slug_mismatch(item: Mapping[str, Any]) -> bool:
    return "Invalid block_type_slug" in str(item["msg"])


def _is_member_tag(part: Any) -> bool:
    # pydantic names the union member it tried in the location: `DuckDBWarehouse`, or a
    # validator-wrapped one as `function-after[_check(), SnowflakeWarehouse]`.
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)


@contextmanager
def invalid_values_explained(document: str, fix: Callable[[], str]) -> Iterator[None]:
    """Turn Prefect's wrapped ValidationError on load into one naming document, fields and fix
    (`fix` is asked only then)."""
    try:
        yield
    except RuntimeError as exc:
        # Prefect wraps the block type's ValidationError in a RuntimeError.
        if not isinstance(exc.__cause__, ValidationError):
            raise
        raise InvalidBlockDocumentError(
            f"{document} has invalid values: {describe_validation_error(exc.__cause__)}. {fix()}"
        ) from exc


def load_block(reference: str) -> Block:
    """Load `block-type/name`, turning invalid stored values into a message naming the fix."""

    def fix() -> str:
        return "Fix them in the Prefect UI (Blocks) or rerun setup."

    with invalid_values_explained(f"Block document {reference!r}", fix):
        block: Block = Block.load(reference, _sync=True)  # type: ignore[call-arg,assignment]
    return block


def load_environment(name: str) -> ELTEnvironment:
    """The environment document `name` with its documents; `local` falls back to the default."""

    def fix() -> str:
        return (
            f"{_legacy_hint(name)}Fix them in the Prefect UI (Blocks) or rerun "
            f"`python -m deployments.setup --environment {name}`."
        )

    try:
        with invalid_values_explained(f"Environment {name!r} (or a document it uses)", fix):
            environment: ELTEnvironment = ELTEnvironment.load(name, _sync=True)  # type: ignore[call-arg,assignment]
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
        if name == LOCAL:
            return embedded_default()
        raise ValueError(
            f"No ELT environment named {name!r}: declare it in deployments/environments/"
            f"{name}.yaml and run `python -m deployments.setup --environment {name}`, "
            "or pick another environment"
        ) from exc
    linked = {role: getattr(environment, role)._block_document_name for role in ROLE_KINDS}
    problem = local_links_problem(name, linked)
    if problem:
        raise InvalidBlockDocumentError(problem)
    return environment


def local_links_problem(environment: str, linked: Mapping[str, str | None]) -> str:
    """'' unless a non-local environment links a document named `local`: then the fix."""
    roles = [role for role, document in linked.items() if document == LOCAL]
    if environment == LOCAL or not roles:
        return ""
    return (
        f"Environment {environment!r} links this machine's `local` document for "
        f"{', '.join(roles)}: a {environment} run would use local settings. Pick the "
        f"{environment} document for {', '.join(roles)} in the Prefect UI (Blocks, ELT "
        f"Environment {environment!r}, Edit), or rerun "
        f"`python -m deployments.setup --environment {environment}`."
    )


def alerts_reference(name: str) -> str:
    """`type/name` of the alerts document environment `name` links, read without loading it
    (for alerting when the environment itself does not load)."""
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(
            name, ELTEnvironment.get_block_type_slug(), include_secrets=False
        )
    linked = (document.block_document_references or {}).get("alerts")
    if not linked:
        raise ValueError(f"Environment {name!r} links no alerts document")
    linked_document = linked["block_document"]
    return f"{linked_document['block_type']['slug']}/{linked_document['name']}"


def _legacy_hint(name: str) -> str:
    """A migration hint when the stored environment still names documents as text."""
    try:
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(
                name, ELTEnvironment.get_block_type_slug()
            )
    except (ObjectNotFound, ValueError):
        return ""
    if any(isinstance(value, str) for value in (document.data or {}).values()):
        return (
            "It was saved by an older version, which named documents as `type/name` text: "
            "setup migrates it. "
        )
    return ""


BLOCK_TYPES: tuple[type[Block], ...] = (
    DuckDBWarehouse, SnowflakeWarehouse, DbtCoreTransform, DbtCloudTransform, ConsoleAlerts,
    SlackAlerts, ELTEnvironment,
)  # fmt: skip


def register_block_types() -> list[str]:
    """Register every block type of this project (and the nested integration types)."""
    for block_type in BLOCK_TYPES:
        # _sync: callers may run inside an event loop (Playwright's sync API, notebooks).
        # Registering a type registers the block types of its nested fields too.
        block_type.register_type_and_schema(_sync=True)  # type: ignore[call-arg]
    return [block_type.get_block_type_slug() for block_type in BLOCK_TYPES]


def document_id(block: Block) -> UUID:
    """The id of a saved document; fails naming the block when it was never saved."""
    if block._block_document_id is None:
        raise ValueError(f"{type(block).__name__} has no saved document: save it first")
    return block._block_document_id
