"""Environments as declared in deployments/environments/<name>.yaml: the one place for each.

An environment file holds everything that is not a secret: its work pool, its flows' parameters
and its block documents (type, settings, and which variable each secret is read from). Setup,
the work pool, prefect.yaml and CI all read it from here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DECLARATIONS_DIR = Path(__file__).with_name("environments")
JOBS_FILE = Path(__file__).with_name("jobs.yaml")
ROLES = ("warehouse", "transform", "alerts")
POOL_TYPES = ("process", "kubernetes")
# `${NAME}` must be set; `${NAME:-}` leaves the field alone when NAME is unset;
# `${NAME:-value}` falls back to value.
VARIABLE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*)(:-(.*))?\}$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")


class DeclarationError(ValueError):
    """An environment file is malformed; the message names the file, the key and the fix."""


class MissingSettingError(ValueError):
    """A variable the declaration reads is not set; names every missing one."""


@dataclass(frozen=True)
class BlockDeclaration:
    """One block document: its type, the fields the declaration owns, and nested documents."""

    type: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    # field -> environment variable the secret is read from (optional when it ends with `?`)
    secrets: Mapping[str, str] = field(default_factory=dict)
    nested: Mapping[str, BlockDeclaration] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkPool:
    name: str
    type: str
    job_variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Environment:
    """One environment as its file declares it."""

    name: str
    description: str
    work_pool: WorkPool
    parameters: Mapping[str, Any]
    blocks: Mapping[str, BlockDeclaration]
    ci_deploy_order: int | None = None

    @property
    def runs_on_kubernetes(self) -> bool:
        return self.work_pool.type == "kubernetes"


def environment_names(directory: Path = DECLARATIONS_DIR) -> list[str]:
    """Every declared environment, by file name."""
    return sorted(path.stem for path in directory.glob("*.yaml"))


def load_environment_declaration(name: str, directory: Path = DECLARATIONS_DIR) -> Environment:
    """The declaration of environment `name`; unknown names list the declared ones."""
    path = directory / f"{name}.yaml"
    if not path.exists():
        raise DeclarationError(
            f"no environment {name!r}: declared are {', '.join(environment_names(directory))}; "
            f"add deployments/environments/{name}.yaml (copy staging.yaml and edit it)"
        )
    return parse_environment(name, yaml.safe_load(path.read_text()) or {}, str(path))


def all_environments(directory: Path = DECLARATIONS_DIR) -> list[Environment]:
    return [load_environment_declaration(name, directory) for name in environment_names(directory)]


def parse_environment(name: str, raw: Mapping[str, Any], where: str) -> Environment:
    """Check and convert one environment file's content."""
    if not NAME_PATTERN.fullmatch(name):
        raise DeclarationError(f"{where}: environment name {name!r} must be lower-case-dashed")
    pool = _mapping(raw, "work_pool", where)
    if pool.get("type") not in POOL_TYPES:
        raise DeclarationError(
            f"{where}: work_pool.type must be one of {', '.join(POOL_TYPES)}, "
            f"not {pool.get('type')!r}"
        )
    blocks = _mapping(raw, "blocks", where)
    missing = [role for role in ROLES if role not in blocks]
    if missing:
        raise DeclarationError(f"{where}: blocks needs {', '.join(missing)} (each with a type)")
    order = raw.get("ci_deploy_order")
    return Environment(
        name=name,
        description=str(raw.get("description", "")),
        work_pool=WorkPool(
            name=str(pool.get("name") or f"elt-{name}"),
            type=str(pool["type"]),
            job_variables=dict(pool.get("job_variables") or {}),
        ),
        parameters=dict(raw.get("parameters") or {}),
        blocks={role: parse_block(blocks[role], f"{where}: blocks.{role}") for role in ROLES},
        ci_deploy_order=int(order) if order is not None else None,
    )


def parse_block(raw: Any, where: str) -> BlockDeclaration:
    """A block declaration; a setting that is itself a mapping with a `type` is a nested one."""
    if not isinstance(raw, Mapping) or not raw.get("type"):
        raise DeclarationError(f"{where}: needs `type:` (a block type slug, e.g. duckdb-warehouse)")
    unknown = set(raw) - {"type", "settings", "secrets"}
    if unknown:
        raise DeclarationError(f"{where}: unknown keys {sorted(unknown)}; use settings/secrets")
    settings, nested = {}, {}
    for key, value in (raw.get("settings") or {}).items():
        if isinstance(value, Mapping) and "type" in value:
            nested[key] = parse_block(value, f"{where}.{key}")
        else:
            settings[key] = value
    secrets = dict(raw.get("secrets") or {})
    for key, variable in secrets.items():
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*\??", str(variable)):
            raise DeclarationError(
                f"{where}.secrets.{key}: give the NAME of the variable holding the secret "
                "(e.g. SLACK_WEBHOOK_URL), never the secret itself"
            )
    return BlockDeclaration(str(raw["type"]), settings, secrets, nested)


def _mapping(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        raise DeclarationError(f"{where}: `{key}:` is missing or not a mapping")
    return value


class Unset:
    """A declared value whose variable is unset and may stay so: the field is left alone."""


UNSET = Unset()


def resolve_value(value: Any, environ: Mapping[str, str]) -> Any:
    """A setting's value with `${NAME}` read from `environ`; UNSET when optional and unset."""
    if not isinstance(value, str):
        return value
    match = VARIABLE.fullmatch(value)
    if match is None:
        return value
    name, has_default, default = match.group(1), match.group(2), match.group(3)
    if environ.get(name):
        return environ[name]
    if has_default is None:
        raise MissingSettingError(name)
    return default if default else UNSET


def resolve_secret(variable: str, environ: Mapping[str, str]) -> str | Unset:
    """The secret read from its variable; UNSET when the variable is not set."""
    value = environ.get(variable.rstrip("?"), "")
    return value if value else UNSET


def secret_is_optional(variable: str) -> bool:
    return variable.endswith("?")


def ci_environments(directory: Path = DECLARATIONS_DIR) -> list[str]:
    """Environments CI deploys on main, in deploy order (e.g. staging before prod)."""
    ordered = [env for env in all_environments(directory) if env.ci_deploy_order is not None]
    return [env.name for env in sorted(ordered, key=lambda env: env.ci_deploy_order or 0)]


def jobs() -> dict[str, Any]:
    """deployments/jobs.yaml: the jobs, the image steps and the Kubernetes job variables."""
    loaded: dict[str, Any] = yaml.safe_load(JOBS_FILE.read_text())
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="List the declared environments.")
    parser.add_argument(
        "--ci", action="store_true", help="as JSON, the ones CI deploys, in deploy order"
    )
    args = parser.parse_args(argv)
    print(json.dumps(ci_environments()) if args.ci else "\n".join(environment_names()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
