"""Bring an environment's block documents in line with its declaration, never clobbering the UI.

Planning is pure (`plan_document`): it compares what a document holds with what the declaration
sets. Applying (`apply_environment`) reads the stored documents, plans, and saves only the
documents that change, each with only the declared fields changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentUpdate
from prefect.exceptions import ObjectNotFound
from prefect.utilities.dispatch import lookup_type
from pydantic import SecretBytes, SecretStr, ValidationError

import blocks  # noqa: F401  (registers the block types that lookup_type finds by slug)
from blocks.environment import ELTEnvironment, describe_validation_error, document_id
from deployments.declarations import (
    UNSET,
    BlockDeclaration,
    Environment,
    MissingSettingError,
    resolve_secret,
    resolve_value,
    secret_is_optional,
)

Action = Literal["create", "update", "unchanged"]


@dataclass(frozen=True)
class Change:
    """One field the declaration sets to another value than the document holds."""

    field: str
    old: Any
    new: Any
    secret: bool = False

    def describe(self) -> str:
        if self.secret:
            how = "set" if self.old in (None, "") else "replaced"
            return f"{self.field}: secret {how} from the declared variable"
        return f"{self.field}: {self.old!r} -> {self.new!r}"


@dataclass(frozen=True)
class DocumentPlan:
    """What setup does to one document: create it, update some fields, or leave it."""

    reference: str
    action: Action
    values: Mapping[str, Any] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredDocument:
    """A saved document's field values (secrets in clear), nested ones as `type/name`."""

    values: Mapping[str, Any]
    nested: Mapping[str, str] = field(default_factory=dict)
    nested_ids: Mapping[str, UUID] = field(default_factory=dict)
    block_schema_checksum: str | None = None


def plan_document(
    declaration: BlockDeclaration,
    name: str,
    stored: StoredDocument | None,
    environ: Mapping[str, str],
    fallback: Mapping[str, Any] | None = None,
) -> DocumentPlan:
    """Pure: the plan for document `<type>/<name>` given what is stored and the variables.

    Only declared fields are written; `fallback` supplies values a missing document can take
    from an older document it replaces (a migration), never over a declared variable.
    """
    reference = f"{declaration.type}/{name}"
    fallback = fallback or {}
    desired: dict[str, Any] = {}
    secret_fields: set[str] = set()
    missing: list[str] = []
    for key, raw in declaration.settings.items():
        try:
            value = resolve_value(raw, environ)
        except MissingSettingError as exc:
            if stored is None and key in fallback:
                desired[key] = fallback[key]
            else:
                missing.append(str(exc))
            continue
        if value is not UNSET:
            desired[key] = value
        elif stored is None and key in fallback:
            desired[key] = fallback[key]
    for key, variable in declaration.secrets.items():
        secret_fields.add(key)
        secret = resolve_secret(variable, environ)
        if secret is not UNSET:
            desired[key] = secret
        elif stored is None and fallback.get(key):
            desired[key] = fallback[key]
        elif not secret_is_optional(variable) and not (stored and stored.values.get(key)):
            missing.append(variable)
    for key, nested in declaration.nested.items():
        desired[key] = f"{nested.type}/{name}"
    if missing:
        return DocumentPlan(reference, "unchanged", missing=tuple(missing))
    if stored is None:
        changes = tuple(
            Change(key, None, _shown(key, value, secret_fields), key in secret_fields)
            for key, value in desired.items()
        )
        return DocumentPlan(reference, "create", desired, changes)
    # A nested field counts only as a reference: older versions stored `type/name` text there.
    plain = {k: v for k, v in stored.values.items() if k not in declaration.nested}
    current = {**plain, **stored.nested}
    changes = tuple(
        Change(key, _shown(key, current.get(key), secret_fields),
               _shown(key, value, secret_fields), key in secret_fields)
        for key, value in desired.items()
        if _comparable(current.get(key)) != _comparable(value)
    )  # fmt: skip
    if not changes:
        return DocumentPlan(reference, "unchanged")
    return DocumentPlan(reference, "update", {c.field: desired[c.field] for c in changes}, changes)


def _comparable(value: Any) -> Any:
    """A value as compared: secrets unwrapped, numbers as text (`${VAR}` reads text)."""
    if isinstance(value, SecretStr | SecretBytes):
        value = value.get_secret_value()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _shown(key: str, value: Any, secret_fields: set[str]) -> Any:
    """Never a secret's value: what setup prints names the field only."""
    return "********" if key in secret_fields and value else value


@dataclass
class AppliedEnvironment:
    """What setup did: one plan per document, and the environment as loaded afterwards."""

    plans: list[DocumentPlan] = field(default_factory=list)
    environment: ELTEnvironment | None = None


class DocumentError(ValueError):
    """A document can't be saved as declared; names it, the fields and the fix."""


def environment_declaration(environment: Environment) -> BlockDeclaration:
    """The `elt-environment` document: the three role documents as nested fields."""
    return BlockDeclaration(ELTEnvironment.get_block_type_slug(), nested=dict(environment.blocks))


def apply_environment(environment: Environment, environ: Mapping[str, str]) -> AppliedEnvironment:
    """Create missing documents and update declared fields that differ; report every plan.

    Every plan is made before anything is saved, so a missing variable saves nothing.
    """
    declaration = environment_declaration(environment)
    planned = _plan_tree(declaration, environment.name, environ, fallback=None)
    missing = sorted({name for plan, *_ in planned for name in plan.missing})
    if missing:
        raise MissingSettingError(
            f"environment {environment.name!r}: set {', '.join(missing)} "
            "(README → Production; in CI, the GitHub environment's variables and secrets)"
        )
    applied = AppliedEnvironment()
    saved: dict[str, Block] = {}
    for plan, block_declaration, stored in planned:  # children before parents
        saved[plan.reference] = _apply(plan, block_declaration, stored, environment.name, saved)
        applied.plans.append(plan)
    environment_block = saved[f"{declaration.type}/{environment.name}"]
    assert isinstance(environment_block, ELTEnvironment)
    applied.environment = environment_block
    return applied


def _plan_tree(
    declaration: BlockDeclaration,
    name: str,
    environ: Mapping[str, str],
    fallback: Mapping[str, Any] | None,
) -> list[tuple[DocumentPlan, BlockDeclaration, StoredDocument | None]]:
    stored = read_stored(declaration.type, name)
    # A document saved by an older version keeps values its nested documents now hold.
    legacy = dict(stored.values) if stored else {}
    planned = []
    for nested in declaration.nested.values():
        planned += _plan_tree(nested, name, environ, fallback=legacy)
    plan = plan_document(declaration, name, stored, environ, fallback)
    planned.append((plan, declaration, stored))
    return planned


def read_stored(slug: str, name: str) -> StoredDocument | None:
    """The document's stored values (secrets in clear), or None when there is none."""
    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(name, slug, include_secrets=True)
        except ObjectNotFound:
            return None
    references = document.block_document_references or {}
    nested, nested_ids = {}, {}
    for key, reference in references.items():
        referenced = reference["block_document"]
        nested[key] = f"{referenced['block_type']['slug']}/{referenced['name']}"
        nested_ids[key] = UUID(str(referenced["id"]))
    values = {k: v for k, v in (document.data or {}).items() if k not in references}
    checksum = document.block_schema.checksum if document.block_schema else None
    return StoredDocument(values, nested, nested_ids, checksum)


def block_class(slug: str) -> type[Block]:
    try:
        found: type[Block] = lookup_type(Block, slug)
    except KeyError as exc:
        raise DocumentError(
            f"unknown block type {slug!r}: use one of this project's types "
            "(duckdb-warehouse, snowflake-warehouse, dbt-core-transform, dbt-cloud-transform, "
            "console-alerts, slack-alerts) or an integration's nested type"
        ) from exc
    return found


def _apply(
    plan: DocumentPlan,
    declaration: BlockDeclaration,
    stored: StoredDocument | None,
    name: str,
    saved: Mapping[str, Block],
) -> Block:
    cls = block_class(declaration.type)
    if plan.action == "unchanged" and not on_an_older_schema(cls, stored):
        loaded: Block = cls.load(name, _sync=True)  # type: ignore[call-arg,assignment]
        return loaded
    fields = set(cls.model_fields)
    values: dict[str, Any] = {}
    if stored is not None:
        # Undeclared fields keep what is stored: a person's edit in the UI survives a deploy.
        values.update({k: v for k, v in stored.values.items() if k in fields})
        for key, document_id in stored.nested_ids.items():
            if key in fields:
                values[key] = Block.load_from_ref(document_id, _sync=True)  # type: ignore[call-arg]
    values.update({k: v for k, v in plan.values.items() if k not in declaration.nested})
    for key, nested in declaration.nested.items():
        values[key] = saved[f"{nested.type}/{name}"]
    try:
        block = cls.model_validate(values)
    except ValidationError as exc:
        raise DocumentError(
            f"{plan.reference} can't be saved as declared: {describe_validation_error(exc)}; "
            "fix the value in deployments/environments/ or the variable it is read from"
        ) from exc
    block.save(name, overwrite=True, _sync=True)  # type: ignore[call-arg]
    if stored is not None and set(stored.values) - fields:
        _drop_legacy_fields(block, name)
    return block


def on_an_older_schema(cls: type[Block], stored: StoredDocument | None) -> bool:
    """Whether the stored document uses another schema than the block type's current one."""
    # The UI's forms render a document's own schema: one saved before the schemas lost their
    # form defaults (blocks/_form.py) is saved again, values unchanged, to take the current one.
    if stored is None or stored.block_schema_checksum is None:
        return False
    return stored.block_schema_checksum != cls._calculate_schema_checksum()


def _drop_legacy_fields(block: Block, name: str) -> None:
    """Store exactly the block's fields: an update merges with what is stored, which would keep
    an older version's fields (such as the Slack URL the webhook document now holds)."""
    document = block._to_block_document(name=name, include_secrets=True)
    update = BlockDocumentUpdate(
        block_schema_id=document.block_schema_id, data=document.data, merge_existing_data=False
    )
    with get_client(sync_client=True) as client:
        client.update_block_document(block_document_id=document_id(block), block_document=update)
